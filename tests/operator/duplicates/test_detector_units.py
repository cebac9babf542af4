"""Duplicate detection without servers: interleaving flags, a restart does not, clearing."""

from __future__ import annotations

from fleet.actors.operator.duplicates import DuplicateDetector
from fleet.contracts import DeviceId

D = DeviceId("d1")


def test_a_restart_is_not_a_duplicate() -> None:
    det = DuplicateDetector(window=30.0)
    assert det.beats(D, ["A"], now=0.0) is None
    assert det.beats(D, ["A"], now=5.0) is None
    assert det.beats(D, ["B"], now=10.0) is None  # A..A then B..B
    assert det.beats(D, ["B"], now=15.0) is None
    assert det.flagged(D) is None


def test_interleaved_instances_are_flagged_then_cleared_after_a_window_alone() -> None:
    det = DuplicateDetector(window=30.0)
    det.beats(D, ["A"], now=0.0)
    det.beats(D, ["B"], now=1.0)
    change = det.beats(D, ["A"], now=2.0)
    assert change is not None
    assert change.instances == ("A", "B")
    assert det.beats(D, ["B"], now=3.0) is None  # still racing: nothing new to say
    assert det.beats(D, ["A"], now=20.0) is None  # B last seen at 3: within the window
    cleared = det.beats(D, ["A"], now=34.0)
    assert cleared is not None
    assert cleared.instances is None
    assert det.flagged(D) is None


def test_a_b_a_inside_one_batch_and_a_third_instance_joining() -> None:
    det = DuplicateDetector(window=30.0)
    change = det.beats(D, ["A", "B", "A"], now=0.0)
    assert change is not None
    assert change.instances == ("A", "B")
    grown = det.beats(D, ["C", "A"], now=1.0)
    assert grown is not None
    assert grown.instances == ("A", "B", "C")


def test_returning_after_the_window_is_a_restart_and_memory_is_dropped() -> None:
    det = DuplicateDetector(window=30.0)
    det.beats(D, ["A"], now=0.0)
    det.beats(D, ["B"], now=1.0)
    assert det.beats(D, ["A"], now=40.0) is None  # A last beat 40 s ago: a restart back
    assert det._others.get(D) is None or "A" not in det._others[D]
    det.drop(D)
    assert len(det) == 0
