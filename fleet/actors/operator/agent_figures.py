"""Fleet-wide agent figures: what every agent's heartbeat counts, added up.

Why it exists: a person running 10,000 devices wants to see that agents keep failing
pulls or keep repairing drift without scraping 10,000 devices. Newer agents put their
run's counters in each heartbeat (:class:`~fleet.contracts.AgentHealth`); the fleet
index hands each device's latest to :class:`AgentFigures`, which adds each counter's
increase to a fleet-wide total (a Prometheus counter, ``fleet_operator_agent_*``).

How increases are counted, per device: the first beat this operator sees sets a
baseline (what the run did before is not counted again after an operator restart); a
beat of a run already seen adds what each counter gained over the highest value that run
showed; a beat of a run not seen before (a new ``instance_id``: the agent restarted)
counts that run's counters from 0. The last :data:`RUNS_KEPT` runs of a device are kept,
so two agents beating under one id (a cloned disk) count each its own gains, never a
whole run again at every switch. Every counter gains at most :data:`MAX_GAIN` per beat:
a device that lies (counters jumping up and down) can add no more than that.

Plain and synchronous, on the fleet index's thread. What it must never do: keep more
than :data:`RUNS_KEPT` small tuples per device, or keep a forgotten device.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleet.contracts import AGENT_HEALTH_COUNTERS, DeviceId

from . import messages as m

_WIDTH = len(AGENT_HEALTH_COUNTERS)
RUNS_KEPT = 3
"""Agent runs remembered per device (two under one id, and the one before)."""
MAX_GAIN = 100_000
"""The most a counter may gain in one beat (a real agent, beating every 10 s, does a few
passes a second at most)."""

Runs = tuple[tuple[str, tuple[int, ...]], ...]  # (instance id, the highest counters), oldest first


class AgentFigures:
    def __init__(self) -> None:
        self._runs: dict[DeviceId, Runs] = {}
        self._totals = [0] * _WIDTH

    def beats(self, beats: Iterable[m.Beat]) -> None:
        runs_of, totals = self._runs, self._totals
        for beat in beats:
            if beat.repeat and beat.device in runs_of:
                continue  # the same run and counters as its last beat: nothing gained
            counters = beat.health
            if counters is None or not beat.instances or len(counters) != _WIDTH:
                continue
            instance = beat.instances[-1]
            runs = runs_of.get(beat.device)
            if runs is None:  # a baseline
                runs_of[beat.device] = ((instance, counters),)
                continue
            before = next((c for i, c in runs if i == instance), None)
            if before is None:  # a run not seen before: counted from 0
                highest, gained = counters, counters
            else:
                highest = tuple(max(n, b) for n, b in zip(counters, before, strict=True))
                gained = tuple(max(0, n - b) for n, b in zip(counters, before, strict=True))
            for i, n in enumerate(gained):
                totals[i] += min(n, MAX_GAIN)
            kept = tuple(r for r in runs if r[0] != instance)[-(RUNS_KEPT - 1) :]
            runs_of[beat.device] = (*kept, (instance, highest))

    def forget(self, device: DeviceId) -> None:
        self._runs.pop(device, None)

    @property
    def totals(self) -> tuple[int, ...]:
        """Each counter's fleet-wide increase, in the order of ``AGENT_HEALTH_COUNTERS``."""
        return tuple(self._totals)

    @property
    def reporting(self) -> int:
        """Devices whose agent put its counters in a heartbeat (not forgotten)."""
        return len(self._runs)
