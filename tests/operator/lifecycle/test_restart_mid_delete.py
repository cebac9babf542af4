"""A real ``fleet-operator`` SIGKILLed while a Deployment is being deleted, then restarted.

The restarted operator must keep the finalizer until its initial sync is done (the
Deployment list and all four buckets) and every desired-state entry of that Deployment
is gone from the bucket; only then may the resource disappear. A spy in the API emulator
counts the Deployment's entries in the bucket at the very moment the finalizer removal
arrives, so a release that comes too early is caught however fast the sweep after it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from kmock._internal import enums

from fleet.contracts import BUCKET_DESIRED_STATE, FINALIZER
from fleet.devtools.kube_emulator import FleetKubeEmulator
from fleet.runtime.nats.kv import KvEntry
from tests.fixtures.kube import KubeCluster
from tests.fixtures.nats import NatsServer

from ..process import operator_process
from ..sim import SCORE, Fleet, eventually

DEVICES = [f"dev-{i:03d}" for i in range(200)]
SEL = {"matchLabels": {"role": "edge"}}


class ReleaseSpy:
    """Records, for each finalizer removal sent for ``ns/web``, how many of its entries
    the desired-state bucket still held when the request reached the API server."""

    def __init__(self, fleet: Any) -> None:
        self._fleet = fleet
        self.releases: list[int] = []

    def web_entries(self) -> int:
        return sum(1 for key in self._fleet.desired() if key.endswith(".web"))

    def wrap(self, original: Any) -> Any:
        spy = self

        async def handle(emulator: FleetKubeEmulator, request: Any) -> Any:
            data = request.data
            if (
                request.action == enums.action.UPDATE
                and request.resource is not None
                and request.resource.plural == "deployments"
                and request.subresource is None
                and request.name == "web"
                and isinstance(data, dict)
            ):
                finalizers = (data.get("metadata") or {}).get("finalizers")
                if finalizers is not None and FINALIZER not in finalizers:
                    spy.releases.append(spy.web_entries())  # blocks this loop a few ms
            return await original(emulator, request)

        return handle


def kill_on_first_delete(fleet: Any, proc: subprocess.Popen[bytes]) -> Any:
    """A desired-state watch that SIGKILLs ``proc`` when the first delete marker shows."""
    killed = threading.Event()

    def on_entry(entry: KvEntry) -> None:
        if entry.deleted and not killed.is_set():
            os.kill(proc.pid, signal.SIGKILL)
            killed.set()

    async def start() -> Any:
        return fleet.bus.watch(BUCKET_DESIRED_STATE, ">", name="test-killer", on_entry=on_entry)

    return fleet.run(start()), killed


@pytest.mark.timeout(120)
@pytest.mark.parametrize("when", ["before-any-delete", "after-first-delete"])
def test_finalizer_is_released_only_after_sync_and_every_entry_gone(
    when: str,
    kube: KubeCluster,
    fleet: Fleet,
    nats_server: NatsServer,
    *,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    spy = ReleaseSpy(fleet)
    monkeypatch.setattr(FleetKubeEmulator, "_handle", spy.wrap(FleetKubeEmulator._handle))
    fleet.join(DEVICES, {"role": "edge"})
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"

    with operator_process(nats_server.url, kube.url, first_log) as first:
        kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
        eventually(lambda: spy.web_entries() == 200, timeout=30)
        eventually(
            lambda: FINALIZER in (kube.deployment("ns", "web") or {})["metadata"]["finalizers"]
        )
        if when == "before-any-delete":
            first.send_signal(signal.SIGSTOP)  # it sees the deletion but can do nothing
            kube.delete_deployment("ns", "web")
            first.kill()
        else:
            watch, killed = kill_on_first_delete(fleet, first)
            try:
                kube.delete_deployment("ns", "web")
                assert killed.wait(timeout=30), "the operator never started deleting"
            finally:
                fleet.run(watch.stop())
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL

    left = spy.web_entries()
    obj = kube.deployment("ns", "web")
    assert obj is not None, "released by the killed operator: nothing left to test"
    assert obj["metadata"].get("deletionTimestamp")
    assert FINALIZER in obj["metadata"]["finalizers"]
    assert spy.releases == []
    if when == "before-any-delete":
        assert left == 200

    with operator_process(nats_server.url, kube.url, second_log):
        eventually(lambda: kube.deployment("ns", "web") is None, timeout=60)
    assert spy.releases == [0], f"released with entries left in the bucket: {spy.releases}"
    assert spy.web_entries() == 0
    # Logged before the release is sent (its answer may time out on a loaded machine,
    # and the Deployment is then gone before "finalizer released" could be said).
    text = second_log.read_text()
    synced_at = text.find("initial sync done")
    released_at = text.find("releasing the finalizer")
    assert 0 <= synced_at < released_at, text
