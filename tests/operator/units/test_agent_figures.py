"""The fleet-wide sums of the agents' heartbeat counters: a baseline per device, each
run's increases over its highest, a new run counted from 0, two runs under one id each
counted once, a lying device bounded per beat, a forgotten device gone."""

from __future__ import annotations

import pytest

from fleet.actors.operator import messages as m
from fleet.actors.operator.agent_figures import MAX_GAIN, AgentFigures
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
    figures.beats([beat("d1", "b", (3, 1, 1, 0, 0, 0))])  # counted over the highest seen
    assert figures.totals == (3, 1, 1, 0, 0, 0)


def test_two_agents_under_one_id_each_count_their_own_gains() -> None:
    figures = AgentFigures()
    figures.beats([beat("d1", "a", (100, 0, 0, 0, 0, 0))])  # baseline
    figures.beats([beat("d1", "b", (50, 0, 0, 0, 0, 0))])  # a second agent: a new run
    for n in range(1, 6):  # interleaved, each gaining 1 a beat
        figures.beats([beat("d1", "a", (100 + n, 0, 0, 0, 0, 0))])
        figures.beats([beat("d1", "b", (50 + n, 0, 0, 0, 0, 0))])
    assert figures.totals == (50 + 10, 0, 0, 0, 0, 0)  # never a whole run again per switch


def test_a_lying_device_adds_at_most_the_cap_per_beat() -> None:
    figures = AgentFigures()
    figures.beats([beat("d1", "a", (0,) * 6)])
    huge = 2**63 - 1
    for _ in range(10):  # up and down and up: the highest seen is the baseline
        figures.beats([beat("d1", "a", (huge, 0, 0, 0, 0, 0))])
        figures.beats([beat("d1", "a", (0,) * 6)])
    assert figures.totals == (MAX_GAIN, 0, 0, 0, 0, 0)
    figures.beats([beat("d1", f"run{i}", (huge,) * 6) for i in range(5)])  # new runs
    assert all(t <= 6 * MAX_GAIN for t in figures.totals)


def test_beats_without_counters_or_instance_are_left_out_and_forgetting_drops() -> None:
    figures = AgentFigures()
    figures.beats([beat("old", "x", None), beat("anon", None, (1, 1, 1, 1, 1, 1))])
    assert figures.reporting == 0
    figures.beats([beat("d1", "a", (1, 0, 0, 0, 0, 0))])
    figures.forget(DeviceId("d1"))
    assert figures.reporting == 0
    figures.beats([beat("d1", "a", (5, 0, 0, 0, 0, 0))])  # a baseline again
    assert figures.totals == (0,) * 6
