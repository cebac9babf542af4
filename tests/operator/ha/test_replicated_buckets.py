"""Replicated buckets on a real 3-node JetStream cluster on loopback.

The operator makes the buckets with its settings (3 replicas), reports a bucket that
differs instead of silently using it, changes one only when asked; and a 1,000-device
rollout goes through losing one node (SIGKILL) and then another after the first is back:
every desired entry right, no report lost.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.contracts import Phase
from fleet.errors import BusError, BusUnavailable
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats import buckets
from fleet.runtime.nats.buckets import BucketSettings
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.server import LocalNatsCluster, LocalNatsServer
from tests.fixtures.kube import KubeCluster
from tests.scores import podman

from ..process import operator_process
from ..rollouts.tap import DesiredTap
from ..sim import Fleet, eventually

R3 = BucketSettings(replicas=3, history=2)
DEVICES = [f"dev-{i:04d}" for i in range(1000)]
LIVE = 600.0
SCORE = {"type": "podman", "containers": [{"name": "web", "image": "localhost/busybox:test"}]}
SEL = {"matchLabels": {"role": "edge"}}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalNatsCluster]:
    nodes = LocalNatsCluster(tmp_path / "cluster")
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


def connect(urls: list[str], loop: EventLoopThread, name: str) -> Bus:
    bus = Bus(urls=urls, name=name, request_timeout=10.0)

    async def up() -> None:
        await bus.start()
        await bus.wait_connected(timeout=30)

    loop.run(up(), timeout=40)
    return bus


def config(bus: Bus, loop: EventLoopThread, bucket: str) -> dict[str, Any]:
    info = loop.run(buckets.stream_info(bus.transport, bucket, timeout=10), timeout=20)
    found: dict[str, Any] = info["config"]
    return found


def ensure(bus: Bus, loop: EventLoopThread, settings: BucketSettings, **kw: Any) -> Any:
    """Retried while the cluster elects its meta leader (a fresh cluster's first seconds:
    JetStream requests time out or answer that there is no leader yet)."""
    out: list[Any] = []

    def attempt() -> bool:
        try:
            out.append(loop.run(bus.ensure_buckets(settings=settings, **kw), timeout=60))
        except BusUnavailable:
            return False
        except BusError as exc:
            if "leader" in str(exc).lower():
                return False
            raise
        return True

    eventually(attempt, timeout=90, interval=0.5)
    return out[-1]


@pytest.mark.timeout(180)
def test_buckets_are_made_with_the_settings_then_checked_and_changed_only_when_asked(
    cluster: LocalNatsCluster, event_loop_thread: EventLoopThread
) -> None:
    loop = event_loop_thread
    bus = connect(cluster.urls, loop, "settings")
    try:
        assert ensure(bus, loop, R3, enforce_limits=True) == {}
        for bucket in buckets.BUCKETS:
            made = config(bus, loop, bucket)
            assert (made["num_replicas"], made["max_msgs_per_subject"]) == (3, 2)
            assert made["max_msg_size"] == buckets.max_value_size(bucket)
        # asked for other settings: reported, not changed
        one = BucketSettings(replicas=1, history=2, max_bytes=64 * 1024 * 1024)
        found = ensure(bus, loop, one)
        assert found["desired-state"] == ["replicas 3, want 1", "max bytes -1, want 67108864"]
        assert config(bus, loop, "desired-state")["num_replicas"] == 3
        # asked to update: changed, and nothing is reported the next time
        loop.run(bus.put("desired-state", "d1.web", b"kept"), timeout=20)
        assert ensure(bus, loop, one, update=True)["device-info"]
        assert config(bus, loop, "device-info")["num_replicas"] == 1
        assert ensure(bus, loop, one) == {}
        entry = loop.run(bus.get("desired-state", "d1.web"), timeout=20)
        assert entry is not None
        assert entry.value == b"kept"  # a change of replicas loses nothing
    finally:
        loop.run(bus.close(), timeout=20)


@pytest.mark.timeout(60)
def test_replicas_a_single_server_cannot_have_are_refused_with_its_reason(
    tmp_path: Path, event_loop_thread: EventLoopThread
) -> None:
    server = LocalNatsServer(store_dir=tmp_path / "single")
    server.start()
    loop = event_loop_thread
    bus = connect([server.url], loop, "single")
    try:
        with pytest.raises(BusError, match="creating bucket 'desired-state'") as caught:
            loop.run(bus.ensure_buckets(settings=R3), timeout=30)
        assert "replicas" in str(caught.value).lower()
    finally:
        loop.run(bus.close(), timeout=20)
        server.stop()


@pytest.mark.timeout(420)
def test_a_rollout_survives_losing_one_node_then_another(
    cluster: LocalNatsCluster, kube: KubeCluster, event_loop_thread: EventLoopThread,
    tmp_path: Path,
) -> None:  # fmt: skip
    loop = event_loop_thread
    bus = connect(cluster.urls, loop, "devices")
    ensure(bus, loop, R3, enforce_limits=True)
    fleet = Fleet(bus, loop)
    tap = DesiredTap(bus, loop).start()
    urls = [arg for url in cluster.urls for arg in ("--nats-url", url)]
    extra = [*urls[2:], "--bucket-replicas", "3", "--bucket-history", "2",
             "--metrics-address", "off"]  # fmt: skip
    first, second = cluster.servers[1], cluster.servers[2]
    try:
        fleet.join(DEVICES, {"role": "edge"})
        with operator_process(
            cluster.urls[0], kube.url, tmp_path / "operator.log", liveness=LIVE, extra=extra
        ) as operator:
            killed = tap.on_first_write("web", first.kill)
            kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
            assert killed.wait(timeout=120), "the operator never wrote"
            eventually(lambda: written(fleet) == set(DEVICES), timeout=180, interval=0.5)
            first.start(timeout=30)  # back: it catches up from the others

            second.kill()  # then another goes
            retried(lambda: fleet.report(DEVICES, "web", Phase.RUNNING))
            eventually(
                lambda: kube.aggregate("ns", "web").get("running") == len(DEVICES),
                timeout=180, interval=0.5,
            )  # fmt: skip
            second.start(timeout=30)
            assert operator.poll() is None, "the operator died"
        assert operator.returncode != -signal.SIGKILL
        desired: dict[str, Any] = {}
        retried(lambda: desired.update(fleet.desired()))
        assert {k.partition(".")[0] for k in desired} == set(DEVICES)
        assert all(podman(e.value).containers[0].image == SCORE["containers"][0]["image"]  # type: ignore[index]
                   for e in desired.values())  # fmt: skip
    finally:
        tap.stop()
        loop.run(bus.close(), timeout=20)


def retried(action: Callable[[], object]) -> None:
    """``action``, again while the cluster answers that it is electing a stream's leader
    (a node just died): what every client of a cluster does."""

    def attempt() -> bool:
        try:
            action()
        except BusUnavailable:
            return False
        return True

    eventually(attempt, timeout=120, interval=0.5)


def written(fleet: Fleet) -> set[str]:
    try:
        desired = fleet.desired()
    except BusUnavailable:
        return set()  # a node just died: ask again
    return {key.partition(".")[0] for key in desired if key.endswith(".web")}
