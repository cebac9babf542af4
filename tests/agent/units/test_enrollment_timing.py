"""The pace of enrollment requests and the moment of renewal: bounded, jittered."""

from __future__ import annotations

import random

import msgspec
import pytest

from fleet.contracts import EnrollmentReply
from fleet.runtime.nats.enrollment_timing import (
    JITTER,
    MAX_BACKOFF,
    MAX_PENDING_RETRY,
    MIN_RETRY,
    RetryPace,
    renew_at,
)


def reply(status: str, retry_after_s: float = 10.0) -> EnrollmentReply:
    return msgspec.convert({"status": status, "retry_after_s": retry_after_s}, EnrollmentReply)


def within(value: float, centre: float) -> bool:
    return centre * (1 - JITTER) <= value <= centre * (1 + JITTER)


def test_pending_follows_the_operator_within_bounds() -> None:
    pace = RetryPace(rng=random.Random(1))
    assert within(pace.after(reply("pending", 3.0)), 3.0)
    assert within(pace.after(reply("pending", 3600.0)), MAX_PENDING_RETRY)
    assert pace.after(reply("pending", 0.0)) >= MIN_RETRY


@pytest.mark.parametrize("status", ["denied", "refused"])
def test_denied_and_refused_ask_again_slowly(status: str) -> None:
    pace = RetryPace(slow=300.0, rng=random.Random(2))
    assert within(pace.after(reply(status, 1.0)), 300.0)
    assert within(pace.after(reply(status, 900.0)), 900.0)


def test_no_answer_backs_off_doubling_to_a_bound_and_resets_on_a_reply() -> None:
    pace = RetryPace(rng=random.Random(3))
    delays = [pace.after(None) for _ in range(10)]
    assert within(delays[0], 1.0)
    assert within(delays[1], 2.0)
    assert within(delays[-1], MAX_BACKOFF)
    pace.after(reply("pending", 1.0))
    assert within(pace.after(None), 1.0)


def test_jitter_spreads_devices() -> None:
    delays = {RetryPace().after(reply("pending", 10.0)) for _ in range(20)}
    assert len(delays) > 1


def test_renewal_comes_at_two_thirds_of_the_lifetime_and_before_expiry() -> None:
    times = [renew_at(issued_at=1000.0, expires_at=1600.0, rng=random.Random(i)) for i in range(50)]
    assert all(1000 + 600 * (2 / 3 - 0.05) <= t <= 1000 + 600 * (2 / 3 + 0.05) for t in times)
    assert renew_at(issued_at=0.0, expires_at=10.0, fraction=0.99) < 10.0
    assert renew_at(issued_at=5.0, expires_at=5.0) == 5.0  # no lifetime: at once
