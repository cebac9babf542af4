"""The fleet index's liveness book: who is online, which beats its actor must hear, and the
devices whose last beat expired (found at the first tick past it, never before)."""

from __future__ import annotations

from fleet.actors.operator.liveness_book import LivenessBook
from fleet.contracts import DeviceId

D1, D2 = DeviceId("d1"), DeviceId("d2")


def test_a_first_beat_is_told_then_only_one_a_refresh_period() -> None:
    book = LivenessBook(timeout=30.0)
    assert book.beat(D1, 100.0, now=100.0)  # first: online, told
    assert book.online(D1)
    told = [t for t in range(110, 200, 10) if book.beat(D1, float(t), now=float(t))]
    assert told == [130, 160, 190]  # every beat at or past a timeout after the last told
    assert len(book) == 1


def test_a_silent_device_expires_at_its_last_beat_plus_the_timeout_not_before() -> None:
    book = LivenessBook(timeout=30.0)
    book.beat(D1, 100.0, now=100.0)
    book.beat(D2, 100.0, now=100.0)
    for t in (110.0, 120.0, 130.0):  # d1 beats on, d2 is silent
        book.beat(D1, t, now=t)
    assert book.expired(now=129.9) == []
    assert book.expired(now=130.1) == [D2]  # 30.1 s after its last beat
    assert not book.online(D2)
    assert book.expired(now=159.9) == []  # d1's check moved to its last beat + 30
    assert book.expired(now=160.5) == [D1]
    assert book.expired(now=1000.0) == []  # each once
    assert len(book) == 0


def test_a_device_back_after_silence_is_told_at_once() -> None:
    book = LivenessBook(timeout=30.0)
    book.beat(D1, 100.0, now=100.0)
    assert book.expired(now=131.0) == [D1]
    assert book.beat(D1, 140.0, now=140.0)  # back online: its actor hears it
    assert book.online(D1)
    assert book.expired(now=169.0) == []
    assert book.expired(now=171.0) == [D1]


def test_an_old_beat_takes_it_offline_and_is_told() -> None:
    book = LivenessBook(timeout=30.0)
    book.beat(D1, 100.0, now=100.0)
    assert book.beat(D1, 50.0, now=110.0)  # older than the timeout (and than the last told)
    assert not book.online(D1)
    assert book.expired(now=200.0) == []  # its pending check was dropped


def test_drop_forgets_everything_and_the_next_beat_is_a_first() -> None:
    book = LivenessBook(timeout=30.0)
    book.beat(D1, 100.0, now=100.0)
    book.drop(D1)
    assert not book.online(D1)
    assert book.expired(now=500.0) == []
    assert book.beat(D1, 501.0, now=501.0)


def test_an_actor_started_with_a_beat_counts_as_told() -> None:
    book = LivenessBook(timeout=30.0)
    book.beat(D1, 100.0, now=100.0)
    book.beat(D1, 110.0, now=110.0)
    book.told(D1, 110.0)  # its actor was started with the beat at 110
    assert not book.beat(D1, 120.0, now=120.0)
    assert book.beat(D1, 140.0, now=140.0)


def test_the_heap_stays_bounded_under_many_rearms() -> None:
    book = LivenessBook(timeout=1.0)
    for i in range(20_000):
        t = float(i)
        book.beat(D1, t, now=t)
        book.expired(now=t + 0.5)
    assert len(book._heap) <= 4 * len(book) + 1025
