"""The fleet-wide sums of the agents' heartbeat counters: a baseline per device, each
run's increases, a new run counted from 0, a decrease ignored, a forgotten device gone."""

from __future__ import annotations

import pytest

from fleet.actors.operator import messages as m
from fleet.actors.operator.agent_figures import AgentFigures
from fleet.contracts import DeviceId

pytestmark = pytest.mark.timeout(10)


def beat(device: str, instance: str | None, counters: tuple[int, ...] | None) -> m.Beat:
    return m.Beat(
        device=DeviceId(device), at=1.0, when=None, revision=1,
        instances=() if instance is None else (instance,), health=counters,
    )  # fmt: skip


def test_increases_are_added_up_and_a_first_beat_is_a_baseline() -> None:
    figures = AgentFigures()
    figures.beats([beat("d1", "a", (100, 5, 7, 1, 2, 3)), beat("d2", "b", (9, 9, 9, 9, 9, 9))])
    assert figures.totals == (0,) * 6  # an operator restart does not count a run twice
    assert figures.reporting == 2
    figures.beats([beat("d1", "a", (101, 5, 8, 1, 2, 4))])
    figures.beats([beat("d1", "a", (103, 6, 8, 1, 3, 4)), beat("d2", "b", (10, 9, 9, 9, 9, 9))])
    assert figures.totals == (4, 1, 1, 0, 1, 1)


def test_a_new_agent_run_counts_from_zero_and_a_decrease_adds_nothing() -> None:
    figures = AgentFigures()
    figures.beats([beat("d1", "a", (50, 0, 0, 0, 0, 0))])
    figures.beats([beat("d1", "b", (2, 1, 1, 0, 0, 0))])  # restarted: a new instance id
    assert figures.totals == (2, 1, 1, 0, 0, 0)
    figures.beats([beat("d1", "b", (1, 1, 1, 0, 0, 0))])  # went down within a run: ignored
    figures.beats([beat("d1", "b", (3, 1, 1, 0, 0, 0))])
    assert figures.totals == (4, 1, 1, 0, 0, 0)


def test_beats_without_counters_or_instance_are_left_out_and_forgetting_drops() -> None:
    figures = AgentFigures()
    figures.beats([beat("old", "x", None), beat("anon", None, (1, 1, 1, 1, 1, 1))])
    assert figures.reporting == 0
    figures.beats([beat("d1", "a", (1, 0, 0, 0, 0, 0))])
    figures.forget(DeviceId("d1"))
    assert figures.reporting == 0
    figures.beats([beat("d1", "a", (5, 0, 0, 0, 0, 0))])  # a baseline again
    assert figures.totals == (0,) * 6
