"""Two real ``fleet-operator --leader-elect`` processes: one leads, the other waits; the
leader SIGKILLed during a rollout is replaced within the Lease duration plus 5 s, and the
rollout completes; a leader stopped cleanly hands over at once (it releases the Lease).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from fleet.runtime.kube.leader_label import LEADER_LABEL
from tests.fixtures.kube import KubeCluster
from tests.fixtures.nats import NatsServer

from ..process import operator_process
from ..rollouts.tap import DesiredTap
from ..sim import Fleet, eventually

DEVICES = [f"dev-{i:04d}" for i in range(600)]
LIVE = 600.0  # the simulated devices beat once: they must stay reachable throughout
DURATION, RENEW, RETRY = 4.0, 3.0, 0.5
SCORE = {"type": "podman", "containers": [{"name": "web", "image": "localhost/busybox:test"}]}
SEL = {"matchLabels": {"role": "edge"}}


def holder(kube: KubeCluster) -> str | None:
    api: Any = kubernetes.client.CoordinationV1Api(kube.api_client)  # it takes dicts too
    try:
        identity: str | None = api.read_namespaced_lease(
            "fleet-operator", "default"
        ).spec.holder_identity
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return identity


@contextlib.contextmanager
def replica(
    nats: NatsServer, kube: KubeCluster, tmp_path: Path, name: str
) -> Iterator[subprocess.Popen[bytes]]:
    timing = f"{DURATION},{RENEW},{RETRY}"
    extra = ["--leader-elect", "--lease-identity", name, "--lease-namespace", "default",
             "--lease-timing", timing, "--metrics-address", "off"]  # fmt: skip
    pod: Any = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"containers": [{"name": "fleet-operator", "image": "x"}]}}  # fmt: skip
    core: Any = kubernetes.client.CoreV1Api(kube.api_client)
    with contextlib.suppress(kubernetes.client.ApiException):  # made by an earlier replica
        core.create_namespaced_pod("default", pod)
    with operator_process(
        nats.url, kube.url, tmp_path / f"{name}.log", liveness=LIVE, extra=extra,
        env={"POD_NAME": name, "POD_NAMESPACE": "default"},
    ) as proc:  # fmt: skip
        yield proc


def labelled(kube: KubeCluster) -> set[str]:
    """The pods labelled the leader's (the dashboard's Service selects them)."""
    core: Any = kubernetes.client.CoreV1Api(kube.api_client)
    pods = core.list_namespaced_pod("default").items
    return {p.metadata.name for p in pods if (p.metadata.labels or {}).get(LEADER_LABEL)}


def written(fleet: Fleet) -> set[str]:
    return {key.partition(".")[0] for key in fleet.desired() if key.endswith(".web")}


@pytest.mark.timeout(240)
def test_the_standby_takes_over_a_killed_leader_and_completes_the_rollout(
    kube: KubeCluster, fleet: Fleet, nats_server: NatsServer, tmp_path: Path
) -> None:
    tap = DesiredTap(fleet.bus, fleet.loop).start()
    try:
        fleet.join(DEVICES, {"role": "edge"})
        with (
            replica(nats_server, kube, tmp_path, "op-a") as a,
            replica(nats_server, kube, tmp_path, "op-b") as b,
        ):
            eventually(lambda: holder(kube) in {"op-a", "op-b"}, timeout=60)
            leader, standby = (a, b) if holder(kube) == "op-a" else (b, a)
            standby_name = "op-b" if leader is a else "op-a"
            eventually(lambda: labelled(kube) == {holder(kube)}, timeout=30)
            killed = tap.on_first_write("web", lambda: os.kill(leader.pid, signal.SIGKILL))
            kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
            assert killed.wait(timeout=90), "the leader never wrote"
            leader.wait(timeout=30)
            assert leader.returncode == -signal.SIGKILL
            eventually(lambda: holder(kube) == standby_name, timeout=DURATION + 30, interval=0.1)
            # the dead leader's pod keeps its label until it restarts (it is not Ready then)
            eventually(lambda: standby_name in labelled(kube), timeout=30)
            assert killed.at is not None
            took = time.monotonic() - killed.at
            print(f"failover: the standby held the Lease {took:.1f} s after the SIGKILL")
            assert took <= DURATION + 5, f"took {took:.1f} s, more than {DURATION} + 5"
            eventually(lambda: written(fleet) == set(DEVICES), timeout=120, interval=0.3)
            eventually(
                lambda: kube.aggregate("ns", "web").get("targeted") == len(DEVICES), timeout=120
            )
            assert standby.poll() is None
    finally:
        tap.stop()


@pytest.mark.timeout(180)
def test_a_leader_stopped_cleanly_hands_over_at_once(
    kube: KubeCluster, fleet: Fleet, nats_server: NatsServer, tmp_path: Path
) -> None:
    fleet.join(DEVICES[:5], {"role": "edge"})
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    with replica(nats_server, kube, tmp_path, "op-a") as a:
        eventually(lambda: holder(kube) == "op-a", timeout=60)
        eventually(lambda: written(fleet) == set(DEVICES[:5]), timeout=60)
        with replica(nats_server, kube, tmp_path, "op-b") as b:
            eventually(lambda: "waiting to lead" in (tmp_path / "op-b.log").read_text(), timeout=60)
            assert holder(kube) == "op-a"
            stopped = time.monotonic()
            a.send_signal(signal.SIGTERM)
            assert a.wait(timeout=60) == 0
            eventually(lambda: holder(kube) == "op-b", timeout=DURATION + 30, interval=0.1)
            took = time.monotonic() - stopped
            eventually(lambda: "op-b" in labelled(kube), timeout=30)
            # released: well under a Lease duration (the stop itself takes some of it)
            print(f"handover after SIGTERM: {took:.1f} s")
            assert b.poll() is None
            fleet.join(DEVICES[5:10], {"role": "edge"})  # the new leader works
            eventually(lambda: written(fleet) == set(DEVICES[:10]), timeout=60)


@pytest.mark.timeout(120)
def test_a_waiting_replica_stops_cleanly_and_writes_nothing(
    kube: KubeCluster, fleet: Fleet, nats_server: NatsServer, tmp_path: Path
) -> None:
    _hold_lease_elsewhere(kube)
    fleet.join(DEVICES[:5], {"role": "edge"})
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    with replica(nats_server, kube, tmp_path, "op-a") as a:
        eventually(lambda: "waiting to lead" in (tmp_path / "op-a.log").read_text(), timeout=60)
        a.send_signal(signal.SIGTERM)
        assert a.wait(timeout=60) == 0
    assert written(fleet) == set()
    assert holder(kube) == "someone-else"


def _snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(directory.iterdir())}


def _hold_lease_elsewhere(kube: KubeCluster) -> None:
    api: Any = kubernetes.client.CoordinationV1Api(kube.api_client)  # it takes dicts too
    held: dict[str, Any] = {"holderIdentity": "someone-else", "leaseDurationSeconds": 3600,
                            "renewTime": "2099-01-01T00:00:00.000000Z"}  # fmt: skip
    api.create_namespaced_lease(
        "default", {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": "fleet-operator"}, "spec": held},
    )  # fmt: skip


@pytest.mark.timeout(120)
def test_a_waiting_replica_leaves_the_authority_untouched(
    kube: KubeCluster, nats_server: NatsServer, tmp_path: Path
) -> None:
    import sys

    auth = tmp_path / "auth"
    made = subprocess.run(
        [sys.executable, "-m", "fleet.cli.operator", "--auth-dir", str(auth), "--init-auth"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    before = _snapshot(auth)
    _hold_lease_elsewhere(kube)
    extra = ["--leader-elect", "--lease-identity", "op-a", "--lease-namespace", "default",
             "--metrics-address", "off", "--auth-dir", str(auth)]  # fmt: skip
    with operator_process(nats_server.url, kube.url, tmp_path / "op-a.log", extra=extra) as a:
        eventually(lambda: "waiting to lead" in (tmp_path / "op-a.log").read_text(), timeout=60)
        a.send_signal(signal.SIGTERM)
        assert a.wait(timeout=60) == 0
    assert _snapshot(auth) == before  # no credentials issued, nothing rewritten


@pytest.mark.timeout(120)
def test_a_replica_without_an_authority_says_so_and_makes_none(
    kube: KubeCluster, nats_server: NatsServer, tmp_path: Path
) -> None:
    auth = tmp_path / "auth"
    extra = ["--leader-elect", "--lease-identity", "op-a", "--lease-namespace", "default",
             "--metrics-address", "off", "--auth-dir", str(auth)]  # fmt: skip
    log = tmp_path / "op-a.log"
    with operator_process(nats_server.url, kube.url, log, extra=extra) as a:
        assert a.wait(timeout=60) == 2
    assert "no fleet authority" in log.read_text()
    assert "--init-auth" in log.read_text()
    assert not auth.exists() or list(auth.iterdir()) == []
    assert holder(kube) is None  # it never even stood as a candidate


def _nobody_listens() -> str:
    import socket

    with socket.socket() as sock:  # a port just free: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return f"nats://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("leader_elect", [False, True])
def test_sigterm_while_nats_is_unreachable_stops_at_once(
    kube: KubeCluster, tmp_path: Path, leader_elect: bool
) -> None:
    log = tmp_path / "op-a.log"
    extra = ["--metrics-address", "off"]
    if leader_elect:
        extra += ["--leader-elect", "--lease-identity", "op-a", "--lease-namespace", "default",
                  "--lease-timing", f"{DURATION},{RENEW},{RETRY}"]  # fmt: skip
    with operator_process(_nobody_listens(), kube.url, log, extra=extra) as a:
        try:
            eventually(lambda: "connecting to NATS" in log.read_text(), timeout=90)
        except AssertionError:
            raise AssertionError(f"never tried NATS (exit {a.poll()}): {log.read_text()}") from None
        if leader_elect:
            assert holder(kube) == "op-a"
        a.send_signal(signal.SIGTERM)
        assert a.wait(timeout=30) == 0
    if leader_elect:
        assert holder(kube) is None  # released: a standby takes over at once


@pytest.mark.timeout(120)
def test_a_leader_that_cannot_reach_nats_gives_the_lease_up(
    kube: KubeCluster, tmp_path: Path
) -> None:
    log = tmp_path / "op-a.log"
    extra = ["--metrics-address", "off", "--leader-elect", "--lease-identity", "op-a",
             "--lease-namespace", "default", "--lease-timing", f"{DURATION},{RENEW},{RETRY}",
             "--nats-connect-timeout", "3"]  # fmt: skip
    with operator_process(_nobody_listens(), kube.url, log, extra=extra) as a:
        eventually(lambda: holder(kube) == "op-a", timeout=60)
        assert a.wait(timeout=60) == 70
    assert "--nats-connect-timeout" in log.read_text()
    assert holder(kube) is None
