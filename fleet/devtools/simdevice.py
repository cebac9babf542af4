"""One simulated device: it writes what ``fleet-agent`` writes, and runs nothing.

Why it exists: proving the operator right at 100,000 devices, or in a test that needs
ten, takes devices that cost kilobytes, not a podman each. A :class:`SimulatedDevice`
speaks the device side of the wire as the agent does, to the same keys, with the same
payloads, through the same bus surface (``Bus.put``, and the agent's own
:class:`~fleet.runtime.nats.desired_feed.DesiredFeed`):

* ``info.<device>`` (its labels, :data:`.simprofile.SIMULATED_INVENTORY`, the runtimes
  it says it has: podman, as an agent with podman, unless it is made with others, e.g.
  ``("kvm",)`` or ``("kubernetes",)``) once its feed is synced, and again on a relabel;
* ``heartbeat.<device>`` every ``heartbeat_interval_s`` (``seq`` from 0 under one
  ``instance_id``, as one run of the agent), the first right after its info;
* for every desired entry, the reports of :mod:`.simrollout` (a score of a type it does
  not run: ``Failed`` naming ``type``, as the agent), echoing the entry's revision,
  written one at a time, latest value per key (:mod:`.simwrites`).

Every value is built by the agent's own :class:`~fleet.actors.agent.reporting.DeviceEntries`
over the contracts' builders, so the bytes are the agent's. It runs on an asyncio loop and
knows nothing of locust or gevent: ``on_measure`` is how timings leave it. The load swarm
adds churn and a bounded feed to it (``loadtest/device.py``).

What it must never do: block the loop, write anything the real agent would not, or be
imported by shipped code (``fleet-agent`` and ``fleet-operator`` never import devtools).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import zlib
from collections.abc import Callable, Mapping
from typing import Protocol

from fleet.actors.agent.reporting import Clock, DeviceEntries, utc_now
from fleet.contracts import (
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    AgentHealth,
    DeviceId,
    Inventory,
    Phase,
)
from fleet.errors import FleetError
from fleet.runtime.aiokit.tasks import cancel_and_wait
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.desired_feed import DesiredFeed
from fleet.runtime.nats.kv import KvEntry

from .simprofile import SIMULATED_AGENT_VERSION, SIMULATED_INVENTORY, Behaviour
from .simrollout import Rollout, Step, rollout_of, simulated_failure, told_to_fail
from .simwrites import LatestReports, MeasureFn, Measurement, Report, TimedPuts

__all__ = [
    "SIMULATED_INVENTORY",
    "Behaviour",
    "Following",
    "MeasureFn",
    "Measurement",
    "SimulatedDevice",
]


class Following(Protocol):
    """A running desired-state feed: it delivers entries until stopped."""

    async def stop(self) -> None: ...


class SimulatedDevice:
    """One device on the wire, living on the loop that owns ``bus``."""

    agent_version = SIMULATED_AGENT_VERSION  # what its info says (a subclass may say more)
    runtimes: tuple[str, ...] = ("podman",)  # the score types its info lists, as the agent's

    def __init__(
        self,
        *,
        bus: Bus,
        device_id: str,
        labels: Mapping[str, str],
        behaviour: Behaviour,
        seed: int = 0,
        on_measure: MeasureFn | None = None,
        limit: asyncio.Semaphore | None = None,
        inventory: Inventory = SIMULATED_INVENTORY,
        instance_id: str | None = None,
        clock: Clock = utc_now,
        runtimes: tuple[str, ...] | None = None,
    ) -> None:
        self.device_id = DeviceId.try_new(device_id)
        if runtimes is not None:
            self.runtimes = runtimes
        self.labels = dict(labels)
        self.behaviour = behaviour
        # Between the steps of a rollout (four at most: Pending, Pulling, Starting, final).
        self._delays = (behaviour.pending_s, behaviour.pulling_s, behaviour.starting_s)
        self.bus = bus
        self.rng = random.Random(seed ^ zlib.crc32(device_id.encode()))
        # Writes in flight, shared by the devices of a process (see simwrites).
        self.limit = limit or asyncio.Semaphore(64)
        self.entries = DeviceEntries(
            device_id=self.device_id, instance_id=instance_id or secrets.token_hex(8), clock=clock
        )
        self._inventory = inventory
        self.puts = TimedPuts(
            bus=bus, limit=self.limit, attempts=behaviour.report_attempts, on_measure=on_measure
        )
        self._reports = LatestReports(
            puts=self.puts,
            bucket=BUCKET_DEVICE_STATE,
            name=f"reports-{self.device_id}",
            written=self._written,
        )
        self._feed: Following | None = None
        self._rollouts: dict[str, asyncio.Task[None]] = {}
        self._beats: asyncio.Task[None] | None = None
        self.silent = False
        #: deployment -> (phase, desired_revision) of the last report written
        self.reported: dict[str, tuple[Phase, int]] = {}
        # what a real agent's heartbeat counts (AgentHealth): passes, failed passes, pulls,
        # failed pulls; a simulated device never drifts nor re-reads
        self.counted = [0, 0, 0, 0]
        self.synced = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------

    def follow(
        self, *, on_entry: Callable[[KvEntry], None], on_synced: Callable[[], None]
    ) -> Following:
        """Start following this device's desired entries: the agent's own feed."""
        feed = DesiredFeed(
            kv=self.bus.kv,
            device_id=self.device_id,
            on_entry=on_entry,
            on_synced=on_synced,
            resync_interval=self.behaviour.resync_interval_s,
        )
        feed.start()
        return feed

    async def start(self, *, sync_timeout: float = 120.0) -> None:
        """Follow the desired state, then announce the device (info) once its feed synced.

        In this order a swarm whose every device-info is written has every feed synced:
        Deployments applied after that reach the devices live, so no device needs an
        initial read of existing entries (a short-lived consumer each) at start.
        """
        self._feed = self.follow(on_entry=self._on_desired, on_synced=self.synced.set)
        try:
            await asyncio.wait_for(self.synced.wait(), sync_timeout)
        except TimeoutError:
            await self.stop()
            raise TimeoutError(
                f"device {self.device_id}: desired-state feed not synced in {sync_timeout}s"
            ) from None
        await self.publish_info()
        if self.behaviour.heartbeat_interval_s > 0:
            self._beats = asyncio.get_running_loop().create_task(
                self.run_heartbeats(self.behaviour.heartbeat_interval_s),
                name=f"beats-{self.device_id}",
            )

    async def stop(self) -> None:
        """Power off: no more beats, rollouts or reports; the feed stops."""
        await cancel_and_wait(self._beats, *self._rollouts.values())
        self._rollouts.clear()
        await self._reports.stop()
        if self._feed is not None:
            await self._feed.stop()
            self._feed = None

    def go_silent(self) -> None:
        """Look powered off to the fleet: no heartbeat or report is written any more."""
        self.silent = True
        self._reports.silence()

    # -- what the agent writes ------------------------------------------------------------

    async def publish_info(self) -> None:
        key, value = self.entries.info(
            labels=self.labels,
            inventory=self._inventory,
            agent_version=self.agent_version,
            runtimes=self.runtimes,
        )
        await self.puts.retried("device-info", BUCKET_DEVICE_INFO, key, value)

    async def heartbeat(self) -> bool:
        """Write one heartbeat; False (nothing written) once the device is silent."""
        if self.silent:
            return False
        passes, failed, pulls, failed_pulls = self.counted
        health = AgentHealth(
            reconciles=passes, reconcile_failures=failed, pulls=pulls, pull_failures=failed_pulls
        )
        entry = self.entries.heartbeat(health=health)
        await self.puts.once("heartbeat", BUCKET_DEVICE_HEARTBEAT, *entry)
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
        rollout = rollout_of(entry, self.runtimes)
        if rollout is None:
            return
        seen = asyncio.get_running_loop().time()
        deployment = rollout.deployment
        previous = self._rollouts.pop(deployment, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.get_running_loop().create_task(
            self._rollout(rollout, seen), name=f"rollout-{entry.key}"
        )
        self._rollouts[deployment] = task
        task.add_done_callback(lambda t: self._forget(deployment, t))

    def _forget(self, deployment: str, task: asyncio.Task[None]) -> None:
        if self._rollouts.get(deployment) is task:
            del self._rollouts[deployment]

    async def _rollout(self, rollout: Rollout, seen: float) -> None:
        steps, last = rollout.steps, len(rollout.steps) - 1
        for n in range(last):  # a delay after each step but the last
            await self._report(rollout, steps[n])
            await asyncio.sleep(self._delay(self._delays[n]))
        counted = self.counted
        counted[0] += 1
        if rollout.image is None:  # removed, or malformed: nothing runs, nothing is timed
            await self._report(rollout, steps[last])
        elif self._fails_image(rollout.image) or self.rng.random() < self.behaviour.failure_rate:
            counted[1:] = [counted[1] + 1, counted[2] + 1, counted[3] + 1]
            await self._report(rollout, simulated_failure(rollout.image), seen=seen)
        else:
            counted[2] += 1
            await self._report(rollout, steps[last], seen=seen)

    def _fails_image(self, image: str) -> bool:
        b = self.behaviour
        return image == b.failing_image and told_to_fail(
            self.device_id, image, b.failing_image_rate
        )

    def _delay(self, base: float) -> float:
        j = self.behaviour.jitter
        return base * self.rng.uniform(1.0 - j, 1.0 + j) if base > 0 else 0.0

    async def _report(self, rollout: Rollout, step: Step, *, seen: float | None = None) -> None:
        """Report a step: queued (latest per key wins, as the agent's publisher does)."""
        if self.silent:
            return
        entry = self.entries.report(
            deployment=rollout.deployment,
            phase=step.phase,
            desired_revision=rollout.revision,
            message=step.message,
        )
        if entry is None:
            return
        key, value = entry
        report = Report(rollout.deployment, step.phase, rollout.revision, value, seen)
        if self.behaviour.coalesce:
            self._reports.offer(key, report)
        else:
            await self._reports.write(key, report)

    def _written(self, report: Report) -> None:
        self.reported[report.deployment] = (report.phase, report.revision)
        if report.seen is not None:
            self.puts.emit("device", f"desired->{report.phase.value}", report.seen)
