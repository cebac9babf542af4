"""Fleet-wide agent figures: what every agent's heartbeat counts, added up.

Why it exists: a person running 10,000 devices wants to see that agents keep failing
pulls or keep repairing drift without scraping 10,000 devices. Newer agents put their
run's counters in each heartbeat (:class:`~fleet.contracts.AgentHealth`); the fleet
index hands each device's latest to :class:`AgentFigures`, which adds each counter's
increase to a fleet-wide total (a Prometheus counter, ``fleet_operator_agent_*``).

How increases are counted, per device: the first beat this operator sees sets a
baseline (what the run did before is not counted again after an operator restart); a
beat of the same agent run adds what each counter gained; a beat of another run (a new
``instance_id``: the agent restarted) counts that run's counters from 0. A counter that
went down within one run (not what an agent does) adds nothing.

Plain and synchronous, on the fleet index's thread. What it must never do: keep more
than one small tuple per device, or keep a forgotten device.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleet.contracts import AGENT_HEALTH_COUNTERS, DeviceId

from . import messages as m

_WIDTH = len(AGENT_HEALTH_COUNTERS)


class AgentFigures:
    def __init__(self) -> None:
        self._last: dict[DeviceId, tuple[str, tuple[int, ...]]] = {}
        self._totals = [0] * _WIDTH

    def beats(self, beats: Iterable[m.Beat]) -> None:
        last, totals = self._last, self._totals
        for beat in beats:
            if beat.health is None or not beat.instances:
                continue
            instance, counters = beat.instances[-1], beat.health
            before = last.get(beat.device)
            last[beat.device] = (instance, counters)
            if before is None:
                continue  # a baseline
            if before[0] != instance:
                gained: Iterable[int] = counters
            else:
                gained = (max(0, now - then) for now, then in zip(counters, before[1], strict=True))
            for i, n in enumerate(gained):
                totals[i] += n

    def forget(self, device: DeviceId) -> None:
        self._last.pop(device, None)

    @property
    def totals(self) -> tuple[int, ...]:
        """Each counter's fleet-wide increase, in the order of ``AGENT_HEALTH_COUNTERS``."""
        return tuple(self._totals)

    @property
    def reporting(self) -> int:
        """Devices whose agent put its counters in a heartbeat (not forgotten)."""
        return len(self._last)
