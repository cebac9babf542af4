"""What the thin actors publish for /metrics, through a fake MetricsPort: a Deployment
actor its status' aggregate and rollout (gone when it stops), a device actor each change
of its liveness (not each heartbeat), the fleet index its sync, the devices it knows and
what the agents' heartbeats counted, added up on its tick."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from fleet.actors.operator import messages as m
from fleet.actors.operator.deployment import DeploymentActor
from fleet.actors.operator.device import DeviceActor
from fleet.actors.operator.fleet import FleetIndex
from fleet.actors.operator.ports import MetricsPort
from fleet.contracts import FINALIZER, DeviceId
from fleet.runtime.actorkit.pool import ActorPool

from .fakes import Api, Ref, Timers, Writer, at, eventually, obj
from .test_actors_with_fake_ports import D1, D2, expects, info, spec_msg

pytestmark = pytest.mark.timeout(30)


class Metrics:
    """:class:`MetricsPort` keeping what it is told (from several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.is_synced = False
        self.known: int | None = None
        self.online_changes: list[bool] = []
        self.deployments: dict[tuple[str, str], tuple[str, dict[str, int], Any]] = {}
        self.agents: tuple[tuple[int, ...], int] | None = None
        self.lags: list[float] = []

    def synced(self) -> None:
        self.is_synced = True

    def devices_known(self, count: int) -> None:
        self.known = count

    def device_online(self, online: bool) -> None:
        with self._lock:
            self.online_changes.append(online)

    def deployment(
        self, key: tuple[str, str], *, owner: str, counts: Mapping[str, int],
        rollout: tuple[str, int] | None,
    ) -> None:  # fmt: skip
        with self._lock:
            self.deployments[key] = (owner, dict(counts), rollout)

    def deployment_gone(self, key: tuple[str, str], *, owner: str) -> None:
        with self._lock:
            if key in self.deployments and self.deployments[key][0] == owner:
                del self.deployments[key]

    def desired_written(self, op: str, ok: int, failed: int, seconds: float) -> None:
        pass

    def nats_reconnected(self) -> None:
        pass

    def events_recorded(self, result: str, count: int) -> None:
        pass

    def watch_lag(self, bucket: str, entries: int) -> None:
        pass

    def status_lag(self, seconds: float) -> None:
        with self._lock:
            self.lags.append(seconds)

    def agent_figures(self, totals: Sequence[int], *, reporting: int) -> None:
        self.agents = (tuple(totals), reporting)


def test_a_deployment_actor_publishes_the_aggregate_its_status_shows() -> None:
    metrics = Metrics()
    port: MetricsPort = metrics  # the fake has the port's shape
    writer, api, dev1, dev2 = Writer(auto=True), Api(), Ref("d1"), Ref("d2")
    actor = DeploymentActor.start(
        key=("ns", "web"), writer=writer, api=api, timers=Timers(hold=(m.RegisterLate,)),
        index=Ref("index"), metrics=port,
    )  # fmt: skip

    def published(running: int, failed: int) -> None:
        owner, counts, rollout = metrics.deployments[("ns", "web")]
        assert owner == actor.actor_urn
        status = api.statuses[-1]
        assert counts == status["aggregate"]
        assert (counts["running"], counts["failed"]) == (running, failed)
        assert rollout == (status["rollout"]["phase"], status["rollout"]["revision"])

    try:
        actor.tell(spec_msg())
        actor.tell(m.Activate(desired=(), targets=((D1, dev1), (D2, dev2))))
        eventually(lambda: bool(expects(dev1)) and bool(expects(dev2)))
        eventually(lambda: published(0, 0))
        reply = expects(dev1)[0].reply
        reply.put(m.Classified(device=D1, cls="running"))
        reply.put(m.Classified(device=D2, cls="failed", message="boom"))
        eventually(lambda: published(1, 1))
        eventually(lambda: len(metrics.lags) >= 2)  # a lag for each acknowledged patch
        assert all(0 <= lag < 5 for lag in metrics.lags)
    finally:
        actor.stop()
    assert metrics.deployments == {}  # gone with its actor


def test_a_device_actor_publishes_changes_of_liveness_only() -> None:
    metrics = Metrics()
    pool = ActorPool(workers=1, name="test-devices")
    try:
        device = DeviceActor.start(
            pool=pool, device=DeviceId("d1"), mirror=Ref("mirror"),
            timers=Timers(hold=(m.LivenessCheck,)), liveness_timeout=30.0, metrics=metrics,
        )  # fmt: skip
        now = time.time()
        for i in range(5):  # five heartbeats, one change: online
            device.tell(m.Beat(device=DeviceId("d1"), at=now + i, when=at(), revision=i + 1))
        eventually(lambda: metrics.online_changes == [True])
        old = now - 100  # a late batch: the newest heartbeat is older than the timeout
        device.tell(m.Beat(device=DeviceId("d1"), at=old, when=at(-100), revision=9))
        eventually(lambda: metrics.online_changes == [True, False])
        device.tell(m.Beat(device=DeviceId("d1"), at=time.time(), when=at(), revision=10))
        eventually(lambda: metrics.online_changes == [True, False, True])
        device.stop()  # online when it stops (forgotten, or the operator stops): it leaves
        assert metrics.online_changes == [True, False, True, False]
    finally:
        pool.shutdown(timeout=5)


@contextlib.contextmanager
def fleet_index(metrics: Metrics) -> Iterator[Any]:
    """A fleet index on fake ports, its ticks held (the test tells ``Tick``)."""
    pool = ActorPool(workers=1, name="test-devices")
    index = FleetIndex.start(
        writer=Writer(auto=True), api=Api(), timers=Timers(hold=(m.Tick,)), pool=pool,
        mirror=Ref("mirror"), sources=("kubernetes",), liveness_timeout=30.0, metrics=metrics,
    )  # fmt: skip
    try:
        yield index
    finally:
        index.stop()
        pool.shutdown(timeout=5)


def test_the_fleet_index_publishes_its_sync_and_the_devices_it_knows() -> None:
    metrics = Metrics()
    with fleet_index(metrics) as index:
        index.tell(m.InfosSeen(infos=((D1, info(D1), 1), (D2, info(D2), 2))))
        index.tell(m.DeploymentsListed(scope=None, objects=(obj(finalizers=(FINALIZER,)),)))
        assert not metrics.is_synced
        index.tell(m.SourceSynced(source="kubernetes"))
        eventually(lambda: metrics.is_synced and metrics.known == 2)


def beat(device: str, instance: str, seq: int, counters: tuple[int, ...] | None) -> m.Beat:
    return m.Beat(
        device=DeviceId(device), at=time.time(), when=at(), revision=seq,
        instances=(instance,), health=counters,
    )  # fmt: skip


def test_the_fleet_index_adds_up_the_agents_counters_on_its_tick() -> None:
    metrics = Metrics()
    with fleet_index(metrics) as index:
        index.tell(m.InfosSeen(infos=((D1, info(D1), 1), (D2, info(D2), 2))))
        index.tell(m.DeploymentsListed(scope=None, objects=()))
        index.tell(m.SourceSynced(source="kubernetes"))
        eventually(lambda: metrics.is_synced)
        # first beats: baselines; then d1 gains 2 passes and a drift repair, d2's agent
        # restarts (a new run: its counters count from 0), an old agent sends none
        index.tell(m.BeatsSeen(beats=(
            beat("d1", "a1", 1, (10, 1, 3, 0, 0, 2)), beat("d2", "b1", 1, (5, 0, 1, 0, 0, 0)),
            beat("d3", "c1", 1, None),
        )))  # fmt: skip
        index.tell(m.BeatsSeen(beats=(
            beat("d1", "a1", 2, (12, 1, 3, 0, 1, 2)), beat("d2", "b2", 2, (1, 1, 1, 1, 0, 0)),
        )))  # fmt: skip
        index.tell(m.Tick())
        eventually(lambda: metrics.agents == ((3, 1, 1, 1, 1, 0), 2))
