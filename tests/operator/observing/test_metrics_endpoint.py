"""A real ``fleet-operator`` process serves /metrics, /healthz and /readyz: the figures of
each Deployment are those of its ``.status.aggregate``, the devices online and unreachable
are those the simulated devices made so (some silent), and readiness follows the initial
sync and NATS while liveness stays."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleet.contracts import Phase
from tests.fixtures.kube import KubeCluster
from tests.fixtures.nats import NatsServer

from ..sim import SCORE, Fleet, eventually

SERVING = re.compile(rb"serving /metrics, /healthz and /readyz on http://127\.0\.0\.1:(\d+)")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@contextlib.contextmanager
def operator(nats_url: str, kube_url: str, log: Path, *argv: str) -> Iterator[str]:
    """A fleet-operator process; yields the base URL of its HTTP port, once it listens."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleet.cli.operator", "--nats-url", nats_url,
             "--kube-url", kube_url, "--metrics-address", "127.0.0.1:0", *argv],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:

        def listening() -> str:
            assert proc.poll() is None, log.read_text()
            found = SERVING.search(log.read_bytes())
            assert found is not None
            return f"http://127.0.0.1:{int(found.group(1))}"

        yield eventually(listening, timeout=30)
        proc.terminate()
        assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]  # its port closed too
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(base: str) -> Samples:
    status, text = get(f"{base}/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def one(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples[(metric, tuple(sorted(labels.items())))]


def figures(samples: Samples, namespace: str, name: str) -> dict[str, int]:
    """A Deployment's figures, shaped as its ``.status.aggregate``."""
    key = {"deployment_namespace": namespace, "deployment": name}
    out = {"targeted": int(one(samples, "fleet_operator_deployment_targeted_devices", **key))}
    for cls in ("running", "pending", "failed", "unreachable"):
        out[cls] = int(one(samples, "fleet_operator_deployment_devices", **key, **{"class": cls}))
    return out


@pytest.mark.timeout(240)
def test_metrics_and_probes_of_a_running_operator(
    nats_server: NatsServer, kube: KubeCluster, fleet: Fleet, tmp_path: Path
) -> None:
    edge = [f"edge-{i}" for i in range(8)]
    lab = [f"lab-{i}" for i in range(4)]
    silent = edge[5:]  # announced, but their last heartbeat is long past the timeout
    fleet.info(edge, {"role": "edge"})
    fleet.info(lab, {"role": "lab"})
    fleet.beat([*edge[:5], *lab])
    fleet.beat(silent, age=3600)
    nats_server.stop()  # the operator starts with NATS down: alive, not ready
    with operator(nats_server.url, kube.url, tmp_path / "operator.log",
                  "--liveness-timeout", "600") as base:  # fmt: skip
        assert get(f"{base}/healthz") == (200, "ok\n")
        status, reason = get(f"{base}/readyz")
        assert status == 503
        assert "initial sync not done" in reason
        assert "NATS not connected" in reason
        assert get(f"{base}/nothing")[0] == 404

        nats_server.start()
        eventually(lambda: get(f"{base}/readyz") == (200, "ok\n"), timeout=60)
        kube.create_deployment("ns", "web", selector={"matchLabels": {"role": "edge"}},
                               score=SCORE)  # fmt: skip
        kube.create_deployment("ns", "db", selector={"matchLabels": {"role": "lab"}},
                               score=SCORE)  # fmt: skip
        eventually(lambda: len(fleet.desired()) == 12, timeout=60)
        fleet.report(edge[:3], "web", Phase.RUNNING)
        fleet.report(edge[3:5], "web", Phase.FAILED, message="exited 1")
        fleet.report(lab, "db", Phase.RUNNING)
        web = {"targeted": 8, "running": 3, "pending": 0, "failed": 2, "unreachable": 3}
        db = {"targeted": 4, "running": 4, "pending": 0, "failed": 0, "unreachable": 0}
        eventually(lambda: kube.aggregate("ns", "web") == web, timeout=60)
        eventually(lambda: kube.aggregate("ns", "db") == db, timeout=60)

        def matches() -> Samples:
            samples = scrape(base)
            assert figures(samples, "ns", "web") == kube.aggregate("ns", "web") == web
            assert figures(samples, "ns", "db") == kube.aggregate("ns", "db") == db
            assert one(samples, "fleet_operator_devices_known") == 12
            assert one(samples, "fleet_operator_devices_online") == 9
            assert one(samples, "fleet_operator_devices_unreachable") == len(silent)
            # no rollout policy: rolled out at once, revision 1 (a status can show the final
            # counts before its revision is recorded: on a loaded machine, one more interval)
            for name in ("web", "db"):
                key = {"deployment_namespace": "ns", "deployment": name}
                assert one(samples, "fleet_operator_deployment_rollout_phase", **key,
                           phase="Complete") == 1  # fmt: skip
                assert one(samples, "fleet_operator_deployment_rollout_phase", **key,
                           phase="Progressing") == 0  # fmt: skip
                assert one(samples, "fleet_operator_deployment_rollout_revision", **key) == 1
            return samples

        samples = eventually(matches, timeout=30)
        assert one(samples, "fleet_operator_synced") == 1
        puts = one(samples, "fleet_operator_desired_writes_total", op="put", result="ok")
        assert puts == 12
        assert one(samples, "fleet_operator_desired_write_batch_seconds_count", op="put") >= 2
        assert one(samples, "process_resident_memory_bytes") > 0
        # how far behind: the watches (sampled every 5 s: caught up at rest) and mailboxes
        caught_up = eventually(lambda: all(
            one(scrape(base), "fleet_operator_watch_lag_entries", bucket=bucket) == 0
            for bucket in ("device-state", "device-info", "device-heartbeat")
        ) and scrape(base), timeout=30)  # fmt: skip
        assert ("fleet_operator_watch_lag_entries", (("bucket", "desired-state"),)) not in caught_up
        assert one(caught_up, "fleet_operator_mailbox_messages", actor="FleetIndex") >= 0
        assert one(caught_up, "fleet_operator_mailbox_largest", actor="DeploymentActor") >= 0
        assert one(caught_up, "fleet_operator_pool_runnable_actors", pool="operator-devices") >= 0
        assert one(caught_up, "fleet_operator_status_lag_seconds_count") >= 2
        assert not any(label == "device" for (_, pairs) in samples for label, _ in pairs)

        nats_server.stop()  # NATS goes away: not ready, still alive
        eventually(lambda: get(f"{base}/readyz") == (503, "NATS not connected\n"), timeout=30)
        assert get(f"{base}/healthz") == (200, "ok\n")
        nats_server.start()
        eventually(lambda: get(f"{base}/readyz") == (200, "ok\n"), timeout=60)
        reconnects = eventually(
            lambda: one(scrape(base), "fleet_operator_nats_reconnects_total") >= 1, timeout=10
        )
        assert reconnects


@pytest.mark.timeout(60)
def test_a_metrics_port_in_use_is_a_clear_exit_2(nats_server: NatsServer, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "fleet.cli.operator", "--nats-url", nats_server.url,
             "--kube-url", "http://127.0.0.1:1", "--metrics-address", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=50, check=False,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"--metrics-address 127.0.0.1:{port}: Address already in use" in done.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("address", ["8080", "[::1]:http"])
def test_a_malformed_metrics_address_is_refused(address: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fleet.cli.operator", "--metrics-address", address],
        capture_output=True, text=True, timeout=50, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--metrics-address:" in done.stderr
