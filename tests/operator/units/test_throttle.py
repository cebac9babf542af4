"""Status throttling with a fake clock: prompt after a quiet spell, one patch per interval."""

from __future__ import annotations

from typing import Any

from fleet.actors.operator.throttle import StatusThrottle

from .fakes import Clock

STATUS: dict[str, Any] = {
    "aggregate": {"targeted": 1},
    "conditions": [{"type": "Ready", "status": "True"}],
}


def test_a_change_after_a_quiet_spell_is_patched_after_the_delay() -> None:
    clock = Clock()
    throttle = StatusThrottle(delay=0.1, interval=0.5, clock=clock)
    assert throttle.changed() == 0.1
    assert throttle.changed() is None  # armed already: the burst joins it
    assert throttle.flush()
    assert throttle.offer(STATUS)
    assert throttle.previous_ready == STATUS["conditions"][0]


def test_a_burst_costs_one_patch_per_interval_and_none_while_one_is_in_flight() -> None:
    clock = Clock()
    throttle = StatusThrottle(delay=0.1, interval=0.5, clock=clock)
    throttle.changed()
    throttle.flush()
    throttle.offer(STATUS)
    assert throttle.changed() is None  # a patch is in flight
    clock.now += 0.05
    delay = throttle.patched(error=None)  # the change during the patch is due
    assert delay is not None
    assert abs(delay - 0.5) < 1e-9  # not before the interval since the last patch
    assert throttle.flush()
    assert not throttle.offer(STATUS)  # unchanged: not patched again
    assert not throttle.flush()  # nothing changed since


def test_a_failed_patch_is_tried_again_unless_told_not_to() -> None:
    clock = Clock()
    throttle = StatusThrottle(delay=0.1, interval=0.5, clock=clock)
    throttle.changed()
    throttle.flush()
    throttle.offer(STATUS)
    assert throttle.patched(error="503") is not None
    assert throttle.last is None  # rebuilt and sent again, even if the same
    assert throttle.flush()
    assert throttle.offer(STATUS)
    assert throttle.patched(error="gone", retry=False) is None


def test_status_patches_through_fake_ports() -> None:
    from fleet.actors.operator.messages import Flush, PatchDone
    from fleet.actors.operator.throttle import StatusPatches

    from .fakes import Api, Ref, Replies, Timers

    api, replies, timers, owner = Api(), Replies(), Timers(hold=(Flush,)), Ref("deployment")
    patches = StatusPatches(("ns", "web"), api=api, replies=replies, timers=timers,
                            owner=owner, delay=0.1, interval=0.5)  # fmt: skip
    patches.changed()
    patches.changed()
    assert timers.held == [Flush()]  # one flush for the burst
    patches.flush(lambda previous: {**STATUS, "seen": previous})
    assert api.statuses == [{**STATUS, "seen": None}]
    (done,) = replies.take()
    assert done == PatchDone(error=None)
    patches.patched(done, retry=True)
    patches.flush(lambda previous: STATUS)  # nothing changed since: no patch
    assert len(api.statuses) == 1


def test_status_lag_runs_from_the_first_change_to_the_acknowledged_patch() -> None:
    from fleet.actors.operator.messages import Flush, PatchDone
    from fleet.actors.operator.throttle import StatusPatches

    from .fakes import Api, Ref, Replies, Timers

    clock, lags = Clock(), list[float]()
    api, replies, timers, owner = Api(), Replies(), Timers(hold=(Flush,)), Ref("deployment")
    patches = StatusPatches(("ns", "web"), api=api, replies=replies, timers=timers,
                            owner=owner, delay=0.1, interval=0.5, lag=lags.append,
                            clock=clock)  # fmt: skip
    patches.changed()
    clock.now += 0.3
    patches.changed()  # joins the first: the lag counts from the first
    patches.flush(lambda previous: STATUS)
    clock.now += 0.2
    patches.patched(PatchDone(error=None), retry=True)
    assert lags == [0.5]
    # a failed patch is measured by the patch that succeeds, from the first change still
    patches.changed()
    patches.flush(lambda previous: {**STATUS, "n": 1})
    clock.now += 1.0
    patches.patched(PatchDone(error="503"), retry=True)
    patches.flush(lambda previous: {**STATUS, "n": 1})
    clock.now += 1.0
    patches.patched(PatchDone(error=None), retry=True)
    assert lags == [0.5, 2.0]
    # a change that leaves the status as it was is not measured
    patches.changed()
    patches.flush(lambda previous: {**STATUS, "n": 1})
    assert len(api.statuses) == 3
    clock.now += 5.0
    patches.changed()
    patches.flush(lambda previous: {**STATUS, "n": 2})
    patches.patched(PatchDone(error=None), retry=True)
    assert lags == [0.5, 2.0, 0.0]
