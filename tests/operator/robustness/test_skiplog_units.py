"""SkipLog without servers: first skip of a key logged, a burst cap, a count per window."""

from __future__ import annotations

import logging

import pytest

from fleet.actors.operator.skiplog import SkipLog


def pending(skips: SkipLog) -> bool:
    """Read afresh: mypy keeps ``skips.pending`` narrowed across the calls that change it."""
    return skips.pending


def test_100000_bad_entries_make_a_handful_of_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="test.skips")
    now = [0.0]
    skips = SkipLog(logging.getLogger("test.skips"), what="entries of b", prefix="b/",
                    window=10.0, burst=5, clock=lambda: now[0])  # fmt: skip
    for i in range(100_000):
        now[0] = i / 100_000  # all within one second
        skips.skip(f"key{i % 7}", "bad")
    assert len(caplog.records) == 5
    assert "b/key0" in caplog.records[0].getMessage()
    assert skips.pending
    now[0] = 11.0
    skips.flush()
    assert len(caplog.records) == 6
    assert "skipped 99995 more malformed entries of b" in caplog.records[-1].getMessage()
    assert not pending(skips)
    assert skips.skipped == 100_000


def test_a_key_is_logged_once_and_memory_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="test.skips")
    now = [0.0]
    skips = SkipLog(logging.getLogger("test.skips"), what="entries", window=1.0, burst=100,
                    remember=3, clock=lambda: now[0])  # fmt: skip
    for window in range(3):
        now[0] = float(window * 2)
        skips.skip("same", "bad")
    assert sum("skipping malformed entry same" in r.getMessage() for r in caplog.records) == 1
    for i in range(1000):
        skips.skip(f"k{i}", "bad")
    assert len(skips._logged) == 3
