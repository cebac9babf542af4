"""``loadtest/run`` against services that already run: a 3-server JetStream cluster on
loopback (R3 buckets) and an API server (the emulator, as `kubectl proxy` would serve a
real cluster), instead of starting its own; and its refusal of NATS that already holds
devices (the verdict reads the buckets whole, so it would count them).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.devtools.kube_emulator import KubeEmulator
from fleet.errors import FleetError
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.buckets import BucketSettings
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.server import LocalNatsCluster

from .test_run import loadtest


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalNatsCluster]:
    nodes = LocalNatsCluster(tmp_path / "cluster")
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture
def api() -> Iterator[KubeEmulator]:
    server = KubeEmulator()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def urls(cluster: LocalNatsCluster) -> list[str]:
    return [arg for url in cluster.urls for arg in ("--nats-url", url)]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_run_against_an_existing_cluster_and_api_server_passes(
    tmp_path: Path, cluster: LocalNatsCluster, api: KubeEmulator
) -> None:
    done = loadtest(
        tmp_path, "--devices", "40", "--deployments", "2", "--duration", "40",
        "--until-settled", *urls(cluster), "--kube-url", api.url, "--bucket-replicas", "3",
        timeout=280,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\nPASS\n" in done.stdout
    figures = json.loads((tmp_path / "run" / "figures.json").read_text())
    assert figures["registered"] == 40
    assert figures["nats_cpu_s"] is None  # not its server: not measured
    log = (tmp_path / "run" / "operator.log").read_text()
    assert "differs from the settings" not in log  # the run made them R3 (the operator's)


@pytest.mark.timeout(120)
def test_a_nats_that_already_holds_devices_is_refused(
    tmp_path: Path, cluster: LocalNatsCluster, api: KubeEmulator,
    event_loop_thread: EventLoopThread,
) -> None:  # fmt: skip
    bus = Bus(urls=cluster.urls, name="leftover")

    async def leave_a_device() -> None:
        await bus.start()
        await bus.wait_connected(timeout=30)
        for _ in range(120):  # a fresh cluster elects its meta leader first
            try:
                await bus.ensure_buckets(settings=BucketSettings(replicas=3))
                break
            except FleetError:  # not ready yet: ask again
                await asyncio.sleep(0.5)
        await bus.put("device-info", "old-device", b"{}")
        await bus.close()

    event_loop_thread.run(leave_a_device(), timeout=90)
    done = loadtest(
        tmp_path, "--devices", "5", "--deployments", "1", "--duration", "10", *urls(cluster),
        "--kube-url", api.url, timeout=100,
    )  # fmt: skip
    assert done.returncode != 0
    shown = done.stdout + done.stderr
    assert "bucket device-info" in done.stderr, shown
    assert "already holds 1 entries" in done.stderr, shown
