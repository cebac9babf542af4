"""A simulated device: speaks the agent's wire (info, heartbeats, desired feed, phases).

Why it exists: proving aggregates right at 100,000 devices needs devices that cost
kilobytes, not a podman each. A :class:`SimulatedDevice` writes what ``fleet-agent``
writes, to the same keys, with the same payloads:

* ``info.<device>`` (``DeviceInfo`` with its labels) once its feed is synced, and again
  on a relabel;
* ``heartbeat.<device>`` (``HeartbeatPayload``, ``seq`` increasing) every
  ``heartbeat_interval_s``, the first one right after its info;
* follows ``<device>.*`` in ``desired-state`` through the agent's own feed
  (:mod:`loadtest.feed`), and for every desired entry reports
  ``Pending -> Pulling -> Starting -> Running`` (or ``Failed`` with a message) at
  ``state.<device>.<deployment>``, echoing the entry's revision in ``desired_revision``;
  a deleted entry is reported ``Removed``.

Churn, decided once per device from its seed: a *silent* device stops heartbeating and
reporting ``churn_after_s`` after start (it looks powered off); a *relabeled* device
rewrites its info with ``relabel_to`` at that time (it may leave some Deployments).

It runs on an asyncio loop (the swarm's bridge loop, or a test's) and knows nothing of
gevent or locust: ``on_measure`` (called on the loop) is how latencies leave it.

What it must never do: block the loop, or write anything the real agent would not.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from fleet.contracts import (
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeploymentState,
    DeviceId,
    DeviceInfo,
    HeartbeatPayload,
    Inventory,
    Phase,
    decode_score,
    device_heartbeat_key,
    device_info_key,
    device_state_key,
    encode_heartbeat,
    encode_info,
    encode_state,
    parse_desired_state_key,
)
from fleet.errors import ContractError, FleetError
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv import KvEntry
from loadtest.feed import Following, follow_desired

AGENT_VERSION = "loadtest-sim"


@dataclass(frozen=True, kw_only=True)
class DeviceBehaviour:
    """How simulated devices act. Delays are seconds, rates are fractions in [0, 1]."""

    pending_s: float = 0.05  # Pending -> Pulling
    pulling_s: float = 0.3  # Pulling -> Starting
    starting_s: float = 0.1  # Starting -> Running (or Failed)
    jitter: float = 0.5  # each delay is scaled by uniform(1 - jitter, 1 + jitter)
    failure_rate: float = 0.0  # chance that one rollout ends Failed
    silent_rate: float = 0.0  # chance that a device goes silent at churn time
    relabel_rate: float = 0.0  # chance that a device relabels at churn time
    churn_after_s: float = 10.0
    relabel_to: tuple[str, str] = ("fleet.load/ring", "moved")
    resync_interval_s: float = 300.0
    heartbeat_interval_s: float = 5.0  # 0: no heartbeat of its own (call heartbeat())
    report_attempts: int = 5
    coalesce: bool = True  # latest report per key wins, one write in flight (as the agent)

    def __post_init__(self) -> None:
        for name in ("failure_rate", "silent_rate", "relabel_rate", "jitter"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"DeviceBehaviour.{name} must be within [0, 1], got {value!r}")
        for name in ("pending_s", "pulling_s", "starting_s", "churn_after_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"DeviceBehaviour.{name} must be >= 0, got {getattr(self, name)}")


class Measurement(NamedTuple):
    """One timed operation, in locust's terms (request type, name, milliseconds, error)."""

    kind: str
    name: str
    ms: float
    error: str | None = None


MeasureFn = Callable[[Measurement], None]


class _Report(NamedTuple):
    deployment: str
    phase: Phase
    revision: int
    value: bytes
    seen: float | None  # set on a rollout's last report: its ack ends desired->Running/Failed


_INVENTORY = Inventory(
    hostname="simulated",
    arch="x86_64",
    os="linux",
    kernel="simulated",
    cpus=1,
    memory_bytes=512 * 1024 * 1024,
    runtime_name="podman",
    runtime_version="simulated",
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SimulatedDevice:
    """One device on the wire, living on the loop that owns ``bus``."""

    def __init__(
        self,
        *,
        bus: Bus,
        device_id: str,
        labels: Mapping[str, str],
        behaviour: DeviceBehaviour,
        seed: int = 0,
        on_measure: MeasureFn | None = None,
        limit: asyncio.Semaphore | None = None,
    ) -> None:
        self.device_id = DeviceId.try_new(device_id)
        self._bus = bus
        self.labels = dict(labels)
        self._b = behaviour
        self._rng = random.Random(seed ^ zlib.crc32(device_id.encode()))
        self._measure = on_measure
        # Writes in flight, shared by the devices of a process: past what one loop can
        # serve, more in flight only means timeouts, retries and a collapse.
        self._limit = limit or asyncio.Semaphore(64)
        self._seq = 0
        self._feed: Following | None = None
        self._rollouts: dict[str, asyncio.Task[None]] = {}
        self._churn: asyncio.Task[None] | None = None
        self._beats: asyncio.Task[None] | None = None
        self._unwritten: dict[str, _Report] = {}  # state key -> latest unwritten report
        self._writer: asyncio.Task[None] | None = None
        self.silent = False
        self.will_go_silent = self._rng.random() < behaviour.silent_rate
        self.will_relabel = self._rng.random() < behaviour.relabel_rate
        #: deployment -> (phase, desired_revision) of the last report written
        self.reported: dict[str, tuple[Phase, int]] = {}
        self.synced = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self, *, sync_timeout: float = 120.0) -> None:
        """Follow the desired state, then announce the device (info) once its feed synced.

        In this order a swarm whose every device-info is written has every feed synced:
        Deployments applied after that reach the devices live, so no device needs an
        initial read of existing entries (a short-lived consumer each) at start.
        """
        self._feed = follow_desired(
            bus=self._bus,
            device_id=self.device_id,
            on_entry=self._on_desired,
            on_synced=self.synced.set,
            resync_interval=self._b.resync_interval_s,
            limit=self._limit,
        )
        try:
            await asyncio.wait_for(self.synced.wait(), sync_timeout)
        except TimeoutError:
            await self.stop()
            raise TimeoutError(
                f"device {self.device_id}: desired-state feed not synced in {sync_timeout}s"
            ) from None
        await self.publish_info()
        if self._b.heartbeat_interval_s > 0:
            self._beats = asyncio.get_running_loop().create_task(
                self.run_heartbeats(self._b.heartbeat_interval_s), name=f"beats-{self.device_id}"
            )
        if self.will_go_silent or self.will_relabel:
            self._churn = asyncio.get_running_loop().create_task(
                self._churn_later(), name=f"churn-{self.device_id}"
            )

    async def stop(self) -> None:
        tasks = [t for t in (self._churn, self._writer, *self._rollouts.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._rollouts.clear()
        if self._feed is not None:
            await self._feed.stop()
            self._feed = None

    # -- what the agent writes ------------------------------------------------------------

    async def publish_info(self) -> None:
        info = DeviceInfo(
            device_id=self.device_id,
            labels=dict(self.labels),
            inventory=_INVENTORY,
            agent_version=AGENT_VERSION,
            updated_at=_now(),
        )
        await self._timed_put(
            "device-info", BUCKET_DEVICE_INFO, device_info_key(self.device_id), encode_info(info)
        )

    async def heartbeat(self) -> bool:
        """Write one heartbeat; False (nothing written) once the device is silent."""
        if self.silent:
            return False
        beat = HeartbeatPayload(device_id=self.device_id, at=_now(), seq=self._seq)
        self._seq += 1
        key = device_heartbeat_key(self.device_id)
        async with self._limit:
            start = asyncio.get_running_loop().time()
            try:
                await self._bus.put(BUCKET_DEVICE_HEARTBEAT, key, encode_heartbeat(beat))
            except FleetError as exc:
                self._emit("KV put", "heartbeat", start, error=f"{key}: {exc}")
                raise
        self._emit("KV put", "heartbeat", start)
        return True

    async def run_heartbeats(self, interval: float) -> None:
        """Beat every ``interval`` seconds (from the start of one beat to the next)."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            with contextlib.suppress(FleetError):
                await self.heartbeat()
            await asyncio.sleep(max(0.0, interval - (loop.time() - started)))

    async def relabel(self, key: str, value: str) -> None:
        self.labels[key] = value
        await self.publish_info()

    # -- desired state -> phases --------------------------------------------------------

    def _on_desired(self, entry: KvEntry) -> None:
        """Called on the loop by the feed, in revision order per key."""
        try:
            _, deployment = parse_desired_state_key(entry.key)
        except ContractError:
            return
        seen = asyncio.get_running_loop().time()
        previous = self._rollouts.pop(deployment, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.get_running_loop().create_task(
            self._rollout(deployment, entry, seen), name=f"rollout-{entry.key}"
        )
        self._rollouts[deployment] = task
        task.add_done_callback(lambda t: self._forget(deployment, t))

    def _forget(self, deployment: str, task: asyncio.Task[None]) -> None:
        if self._rollouts.get(deployment) is task:
            del self._rollouts[deployment]

    async def _rollout(self, deployment: str, entry: KvEntry, seen: float) -> None:
        revision = entry.revision
        if entry.deleted:
            await self._report(deployment, Phase.REMOVED, revision)
            return
        try:
            score = decode_score(entry.value)
        except ContractError as exc:
            message = f"the desired state is malformed: {exc}"
            await self._report(deployment, Phase.FAILED, revision, message)
            return
        await self._report(deployment, Phase.PENDING, revision)
        await asyncio.sleep(self._delay(self._b.pending_s))
        image = score.containers[0].image if score.containers else "(no container)"
        await self._report(deployment, Phase.PULLING, revision, f"pulling {image}")
        await asyncio.sleep(self._delay(self._b.pulling_s))
        await self._report(deployment, Phase.STARTING, revision)
        await asyncio.sleep(self._delay(self._b.starting_s))
        if self._rng.random() < self._b.failure_rate:
            message = f"simulated failure: {image} exited with code 1 (loadtest failure rate)"
            await self._report(deployment, Phase.FAILED, revision, message, seen=seen)
        else:
            await self._report(deployment, Phase.RUNNING, revision, seen=seen)

    def _delay(self, base: float) -> float:
        j = self._b.jitter
        return base * self._rng.uniform(1.0 - j, 1.0 + j) if base > 0 else 0.0

    async def _report(
        self,
        deployment: str,
        phase: Phase,
        revision: int,
        message: str | None = None,
        *,
        seen: float | None = None,
    ) -> None:
        """Report a phase: queued (latest per key wins, as the agent's publisher does)."""
        if self.silent:
            return
        state = DeploymentState(
            device_id=self.device_id,
            deployment=DeploymentName.try_new(deployment),
            phase=phase,
            desired_revision=revision,
            message=message,
            updated_at=_now(),
        )
        key = device_state_key(self.device_id, state.deployment)
        report = _Report(deployment, phase, revision, encode_state(state), seen)
        if not self._b.coalesce:
            await self._write(key, report)
            return
        self._unwritten[key] = report
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(
                self._write_unwritten(), name=f"reports-{self.device_id}"
            )

    async def _write_unwritten(self) -> None:
        """One write in flight per device; a report superseded meanwhile is never written."""
        while self._unwritten and not self.silent:
            key, report = next(iter(self._unwritten.items()))
            await self._write(key, report)
            if self._unwritten.get(key) is report:
                del self._unwritten[key]
        self._unwritten.clear()

    async def _write(self, key: str, report: _Report) -> None:
        if await self._timed_put("device-state", BUCKET_DEVICE_STATE, key, report.value):
            self.reported[report.deployment] = (report.phase, report.revision)
            if report.seen is not None:
                self._emit("device", f"desired->{report.phase.value}", report.seen)

    async def _timed_put(self, name: str, bucket: str, key: str, value: bytes) -> bool:
        """Put with retries; the measurement is the last attempt's round trip."""
        loop = asyncio.get_running_loop()
        error: FleetError | None = None
        for attempt in range(self._b.report_attempts):
            async with self._limit:
                start = loop.time()
                try:
                    await self._bus.put(bucket, key, value)
                except FleetError as exc:
                    error = exc
                else:
                    self._emit("KV put", name, start)
                    return True
            await asyncio.sleep(0.2 * (attempt + 1))
        self._emit("KV put", name, start, error=f"{bucket}/{key}: {error}")
        return False

    def _emit(self, kind: str, name: str, start: float, *, error: str | None = None) -> None:
        if self._measure is not None:
            ms = (asyncio.get_running_loop().time() - start) * 1000.0
            self._measure(Measurement(kind, name, ms, error))

    # -- churn ----------------------------------------------------------------------------

    async def _churn_later(self) -> None:
        await asyncio.sleep(self._b.churn_after_s)
        if self.will_relabel:
            key, value = self._b.relabel_to
            with contextlib.suppress(FleetError):
                await self.relabel(key, value)
        if self.will_go_silent:
            self.silent = True
