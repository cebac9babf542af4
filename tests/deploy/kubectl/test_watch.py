"""Watches as kubectl uses them: ``get -w`` (Tables), selectors, and a killed client."""

from __future__ import annotations

import signal
import threading

import pytest
from kmock._internal import references

from tests.fixtures.kube import GROUP, VERSION, KubeCluster
from tests.operator.sim import eventually

from .conftest import Kubectl

pytestmark = pytest.mark.timeout(120)
SCORE = {"type": "podman", "containers": []}


def watchers(kube: KubeCluster) -> int:
    """How many watches of Deployments hold a place on the emulator's event bus."""
    emulator = kube.server.emulator
    assert emulator is not None
    bus = emulator._buses[references.resource(GROUP, VERSION, "deployments")]
    return int(bus.consumer_count)


def test_get_watch_prints_rows_and_a_killed_kubectl_releases_its_watch(
    kube: KubeCluster, kubectl: Kubectl
) -> None:
    kube.create_deployment("default", "first", selector={}, score=SCORE)
    lines: list[str] = []
    with kubectl.popen("get", "fleetdep", "-w", "-l", "app=web") as watch:
        reader = threading.Thread(
            target=lambda: lines.extend(iter(watch.stdout.readline, "")),  # type: ignore[union-attr]
            name="kubectl-watch-reader",
            daemon=True,
        )
        reader.start()
        try:
            eventually(lambda: watchers(kube) == 1, timeout=30)
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Deployment",
                "metadata": {"name": "second", "namespace": "default", "labels": {"app": "web"}},
                "spec": {"selector": {}, "score": SCORE},
            }
            kube.custom.create_namespaced_custom_object(
                GROUP, VERSION, "default", "deployments", body
            )
            eventually(lambda: any(line.startswith("second ") for line in lines), timeout=30)
            assert lines[0].split()[:2] == ["NAME", "TARGETED"]  # the header, once
            assert not any(line.startswith("first ") for line in lines)  # not app=web
            watch.send_signal(signal.SIGKILL)  # the client dies mid-watch
        finally:
            watch.kill()
            watch.wait(timeout=10)
            reader.join(timeout=10)
    eventually(lambda: watchers(kube) == 0, timeout=30)  # its place on the bus is released
    kube.create_deployment("default", "third", selector={}, score=SCORE)
    assert kube.deployment("default", "third") is not None  # and the emulator goes on
