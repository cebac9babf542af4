"""Hostile Deployments and Devices reach a real ``fleet-operator``: each bad one gets a
reason, the process stays up, a healthy neighbour's aggregate stays right.

A real API server stores a spec nested 10,000 deep (``score`` preserves unknown
fields); the emulator runs in this process, whose recursion limit is raised so that it
can store and serve one 1,000 deep. The operator runs as its own process, with Python's
default limit, as in production (``json.loads`` used to die there at about 1,000).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.contracts import Phase
from fleet.contracts.limits import MAX_DESIRED_DEPTH
from tests.fixtures.kube import KubeCluster
from tests.fixtures.nats import NatsServer

from ..sim import SCORE, Fleet, eventually

GROUP = "/apis/fleet.nationtech.io/v1alpha1"
SEL = {"matchLabels": {"role": "edge"}}

SPEC_DEPTH = MAX_DESIRED_DEPTH + 1  # a score (Kubernetes manifests nest deep) inside the spec


def deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.fixture
def deep_recursion() -> Iterator[None]:
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def post(url: str, path: str, body: bytes) -> None:
    request = urllib.request.Request(
        url + path, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # 127.0.0.1 only
        response.read()


def deep_deployment(name: str) -> bytes:
    return (
        b'{"apiVersion":"fleet.nationtech.io/v1alpha1","kind":"Deployment","metadata":'
        b'{"name":"' + name.encode() + b'","namespace":"ns"},"spec":{"selector":{},'
        b'"score":{"type":"podman","containers":[{"name":"w","image":"i","x":' + deep(1000)
        + b"}]}}}"
    )  # fmt: skip


def reason(kube: KubeCluster, name: str) -> str:
    ready = kube.ready("ns", name)
    assert ready.get("reason") == "InvalidSpec", ready
    return str(ready["message"])


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("deep_recursion")
def test_hostile_objects_get_reasons_and_the_operator_stays_up(
    kube: KubeCluster, fleet: Fleet, nats_server: NatsServer, tmp_path: Path
) -> None:
    fleet.join(["d1", "d2"], {"role": "edge"})
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    post(kube.url, f"{GROUP}/namespaces/ns/deployments", deep_deployment("deep"))
    big = {"type": "podman", "containers": [{"name": "w", "image": "i", "pad": "x" * 1_000_000}]}
    kube.create_deployment("ns", "big", selector=SEL, score=big)
    kube.create_deployment("ns", "scalar", spec="just a string")  # type: ignore[arg-type]
    kube.create_deployment("ns", "labels", selector={"matchLabels": {"role": 5}}, score=SCORE)
    many = [{"key": f"k{i}", "operator": "Exists"} for i in range(10_000)]
    kube.create_deployment("ns", "terms", selector={"matchExpressions": many}, score=SCORE)
    post(kube.url, f"{GROUP}/devices", json.dumps({
        "apiVersion": "fleet.nationtech.io/v1alpha1", "kind": "Device",
        "metadata": {"name": "someone-elses"}, "spec": {"deviceId": "x", "junk": 0},
    }).encode().replace(b"0}}", deep(1000) + b"}}"))  # fmt: skip

    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleet.cli.operator", "--nats-url", nats_server.url,
             "--kube-url", kube.url, "--liveness-timeout", "30"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        eventually(lambda: set(fleet.desired()) == {"d1.web", "d2.web"}, timeout=30)
        fleet.report(["d1", "d2"], "web", Phase.RUNNING)
        healthy = {"targeted": 2, "running": 2, "pending": 0, "failed": 0, "unreachable": 0}
        eventually(lambda: kube.aggregate("ns", "web") == healthy, timeout=20)
        eventually(
            lambda: "nests 1000" in reason(kube, "deep") or "nests 100" in reason(kube, "deep")
        )
        assert f"at most {SPEC_DEPTH} allowed" in reason(kube, "deep")
        eventually(lambda: "spec is too large" in reason(kube, "big"))
        eventually(lambda: "spec must be an object, got 'just a string'" in reason(kube, "scalar"))
        eventually(lambda: "invalid label value 5" in reason(kube, "labels"))
        eventually(
            lambda: "too large" in reason(kube, "terms") or "requirements" in reason(kube, "terms")
        )
        assert all(len(reason(kube, n)) < 600 for n in ("deep", "big", "scalar", "labels", "terms"))
        eventually(lambda: kube.devices()["d1"]["status"]["labels"] == {"role": "edge"})

        post(
            kube.url, f"{GROUP}/namespaces/ns/deployments", deep_deployment("deeper")
        )  # a watch event
        eventually(lambda: f"at most {SPEC_DEPTH} allowed" in reason(kube, "deeper"))
        kube.delete_deployment("ns", "deep")  # its finalizer goes too
        eventually(lambda: kube.deployment("ns", "deep") is None)
        fleet.join(["d3"], {"role": "edge"})
        eventually(lambda: "d3.web" in fleet.desired())
        assert set(fleet.desired()) == {"d1.web", "d2.web", "d3.web"}
        assert proc.poll() is None, log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "RecursionError" not in text
    assert "CRITICAL" not in text
