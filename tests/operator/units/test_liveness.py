"""Liveness of one device, and the coarse clock its checks run on."""

from __future__ import annotations

import pykka

from fleet.actors.operator.liveness import Liveness
from fleet.runtime.actorkit.coarse_timers import CoarseTimers

from .fakes import Clock, Ref, at


def online(live: Liveness) -> bool:
    """Read afresh: mypy keeps ``live.online`` narrowed across the calls that change it."""
    return live.online


def test_a_fresh_beat_is_online_and_one_check_is_armed_at_its_deadline() -> None:
    live = Liveness(timeout=30.0)
    assert not live.online  # never beat: unreachable
    assert live.wake_in(now=100.0) is None  # offline: nothing to check
    assert live.beat(90.0, at(90), now=100.0)
    assert online(live)
    assert live.wake_in(now=100.0) == 20.0
    assert live.wake_in(now=100.0) is None  # one check pending at a time
    assert not live.beat(110.0, at(110), now=110.0)  # still online: no change


def test_the_check_finds_a_newer_beat_or_takes_the_device_offline() -> None:
    live = Liveness(timeout=30.0)
    live.beat(90.0, at(90), now=100.0)
    live.wake_in(now=100.0)
    live.beat(110.0, at(110), now=110.0)
    assert not live.check(now=120.0)  # beat at 110: alive until 140
    assert live.wake_in(now=120.0) == 20.0
    assert live.check(now=140.5)
    assert not live.online
    assert live.wake_in(now=140.5) is None


def test_an_old_beat_does_not_bring_it_online_and_a_deleted_key_takes_it_offline() -> None:
    live = Liveness(timeout=30.0)
    assert not live.beat(10.0, at(10), now=100.0)  # 90 s old
    assert not live.online
    live.beat(99.0, at(99), now=100.0)
    assert live.beat(0.0, None, now=101.0)
    assert not live.online
    assert live.when == at(99)  # still shown as the last heartbeat
    assert live.check(now=200.0) is False


def test_coarse_timers_fire_what_is_due_in_order_and_drop_dead_targets() -> None:
    clock = Clock(100.0)
    timers = CoarseTimers(clock=clock)
    a, b = Ref("a"), Ref("b")
    # Fake refs: tell_later takes a pykka.ActorRef, of which it only calls tell().
    timers.tell_later(a, "late", delay=10.0)  # type: ignore[arg-type]
    timers.tell_later(b, "soon", delay=1.0)  # type: ignore[arg-type]
    cancelled = timers.tell_later(b, "never", delay=0.5)  # type: ignore[arg-type]
    cancelled.cancel()
    assert len(timers) == 3
    assert timers.fire(now=100.9) == 0  # "never" came due, cancelled
    assert timers.fire(now=101.0) == 1
    assert b.told == ["soon"]

    class Dead:
        def tell(self, message: object) -> None:
            raise pykka.ActorDeadError("gone")

    timers.tell_later(Dead(), "x", delay=0.0)  # type: ignore[arg-type]
    clock.now = 111.0
    assert timers.fire() == 1  # "late" told, the dead one dropped
    assert a.told == ["late"]
    assert len(timers) == 0
