"""The crash-loop rule on its own: restarts counted over a sliding window."""

from __future__ import annotations

from fleet.actors.agent.crash_loops import MAX_SAMPLES, CrashLoops


def test_three_restarts_within_the_window_loop_and_a_quiet_window_heals() -> None:
    loops = CrashLoops(window=60.0, restarts=3)
    assert not loops.observe("web", container_id="a", restart_count=10, now=0.0)  # baseline
    assert not loops.observe("web", container_id="a", restart_count=12, now=5.0)
    assert loops.observe("web", container_id="a", restart_count=13, now=6.0)
    # one restart left in the window (at 6.0): still looping until a window has none
    assert loops.observe("web", container_id="a", restart_count=13, now=65.0)
    assert not loops.observe("web", container_id="a", restart_count=13, now=66.0)


def test_slow_restarts_never_loop() -> None:
    loops = CrashLoops(window=60.0, restarts=3)
    for minute in range(10):
        assert not loops.observe("web", container_id="a", restart_count=minute, now=minute * 40.0)


def test_a_new_container_starts_over_and_forgotten_ones_are_dropped() -> None:
    loops = CrashLoops(window=60.0, restarts=3)
    loops.observe("web", container_id="a", restart_count=0, now=0.0)
    assert loops.observe("web", container_id="a", restart_count=5, now=1.0)
    assert not loops.observe("web", container_id="b", restart_count=0, now=2.0)
    loops.forget(["other"])
    assert not loops.observe("web", container_id="b", restart_count=9, now=3.0)


def test_samples_are_bounded_and_a_fast_loop_still_counts() -> None:
    loops = CrashLoops(window=60.0, restarts=3)
    looping = [
        loops.observe("web", container_id="a", restart_count=i, now=i * 0.1)
        for i in range(10 * MAX_SAMPLES)
    ]
    assert all(looping[3:])
    assert len(loops._seen["web"][1]) <= MAX_SAMPLES
