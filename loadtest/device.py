"""The load swarm's device: the shared simulated device, with churn and a bounded feed.

Why it exists: the swarm's devices are :class:`fleet.devtools.simdevice.SimulatedDevice`
(which writes what ``fleet-agent`` writes: info, heartbeats, a report per phase of every
desired entry); this module adds only what a load run needs on top:

* the feed goes through :mod:`loadtest.feed` (the agent's own ``DesiredFeed``, its
  requests bounded by the process's ``limit``);
* churn, decided once per device from its seed: a *silent* device stops heartbeating and
  reporting ``churn_after_s`` after start (it looks powered off); a *relabeled* device
  rewrites its info with ``relabel_to`` at that time (it may leave some Deployments);
* its info says ``agent_version`` ``loadtest-sim``.

Latencies leave through ``on_measure`` (called on the loop) as :class:`Measurement`.

What it must never do: block the loop, or write anything of its own: every write is
the shared device's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from fleet.devtools.simdevice import Following, MeasureFn, Measurement
from fleet.devtools.simdevice import SimulatedDevice as _Device
from fleet.devtools.simprofile import Behaviour
from fleet.errors import FleetError
from fleet.runtime.aiokit.tasks import cancel_and_wait
from fleet.runtime.nats.kv import KvEntry
from loadtest.feed import follow_desired

__all__ = ["AGENT_VERSION", "DeviceBehaviour", "MeasureFn", "Measurement", "SimulatedDevice"]

AGENT_VERSION = "loadtest-sim"


@dataclass(frozen=True, kw_only=True)
class DeviceBehaviour(Behaviour):
    """:class:`~fleet.devtools.simprofile.Behaviour`, and churn."""

    silent_rate: float = 0.0  # chance that a device goes silent at churn time
    relabel_rate: float = 0.0  # chance that a device relabels at churn time
    churn_after_s: float = 10.0
    relabel_to: tuple[str, str] = ("fleet.load/ring", "moved")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check(rates=("silent_rate", "relabel_rate"), delays=("churn_after_s",))


class SimulatedDevice(_Device):
    """One swarm device, living on the loop that owns ``bus``; made as the shared one is,
    with a :class:`DeviceBehaviour`."""

    agent_version = AGENT_VERSION
    behaviour: DeviceBehaviour
    will_go_silent = False
    will_relabel = False
    _churn: asyncio.Task[None] | None = None

    def follow(
        self, *, on_entry: Callable[[KvEntry], None], on_synced: Callable[[], None]
    ) -> Following:
        return follow_desired(
            bus=self.bus,
            device_id=self.device_id,
            on_entry=on_entry,
            on_synced=on_synced,
            resync_interval=self.behaviour.resync_interval_s,
            limit=self.limit,
        )

    async def start(self, *, sync_timeout: float = 120.0) -> None:
        # Churn is the first thing drawn from the device's seed: same seed, same churn.
        self.will_go_silent = self.rng.random() < self.behaviour.silent_rate
        self.will_relabel = self.rng.random() < self.behaviour.relabel_rate
        await super().start(sync_timeout=sync_timeout)
        if self.will_go_silent or self.will_relabel:
            self._churn = asyncio.get_running_loop().create_task(
                self._churn_later(), name=f"churn-{self.device_id}"
            )

    async def stop(self) -> None:
        if self._churn is not None:
            await cancel_and_wait(self._churn)
        await super().stop()

    async def _churn_later(self) -> None:
        await asyncio.sleep(self.behaviour.churn_after_s)
        if self.will_relabel:
            with contextlib.suppress(FleetError):
                await self.relabel(*self.behaviour.relabel_to)
        if self.will_go_silent:
            self.go_silent()
