"""The fleet index's device roster without actors: routing to a device's keeper, actors
only for announced devices (with what waited), forgetting the silent."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from fleet.actors.operator import messages as m
from fleet.actors.operator.roster import DeviceRoster
from fleet.contracts import DeviceId, DeviceInfo, Inventory
from fleet.runtime.actorkit.coarse_timers import CoarseTimers

from .fakes import Clock, Deleter, Ref, Replies, at, report

D1, D2 = DeviceId("d1"), DeviceId("d2")
INFO = DeviceInfo(
    device_id=D1, labels={}, agent_version="1", updated_at=at(),
    inventory=Inventory(hostname="h", arch="x86_64", os="o", kernel="k", cpus=1,
                        memory_bytes=1, runtime_name="podman", runtime_version="4"),
)  # fmt: skip


class Started:
    """The device-actor factory: a Ref per device, remembering what it was handed."""

    def __init__(self) -> None:
        self.refs: dict[DeviceId, Ref] = {}
        self.handed: dict[DeviceId, tuple[Any, ...]] = {}

    def __call__(self, device: DeviceId, beat: Any, reports: Any, duplicate: Any) -> Ref:
        self.handed[device] = (beat, reports, duplicate)
        ref = self.refs[device] = Ref(str(device))
        ref.is_alive = lambda: True  # type: ignore[attr-defined]
        return ref


def roster(start: Started, **kw: Any) -> DeviceRoster:
    args: dict[str, Any] = {"liveness_timeout": 30.0, "retention": 0.0, "deleter": None,
                            "replies": Replies()}  # fmt: skip
    return DeviceRoster(start=start, **{**args, **kw})


def beat(device: DeviceId, seconds: float, instance: str | None = None) -> m.Beat:
    return m.Beat(device=device, at=seconds, when=at(seconds), revision=1,
                  instances=(instance,) if instance else ())  # fmt: skip


def test_what_came_before_an_announcement_goes_to_the_new_actor() -> None:
    start = Started()
    r = roster(start)
    r.beats([beat(D1, 5.0)], now=10.0)
    assert r.report(report("d1", "web"), now=10.0) is None  # no actor: kept aside
    assert start.refs == {}
    r.info(D1, INFO, 1, now=10.0)
    handed_beat, handed_reports, _ = start.handed[D1]
    assert handed_beat.at == 5.0
    assert [x.deployment for x in handed_reports] == ["web"]
    ref = start.refs[D1]
    assert isinstance(ref.told[-1], m.DeviceInfoSeen)
    assert r.report(report("d1", "api"), now=11.0) is ref  # now routed to it
    r.beats([beat(D1, 11.0)], now=11.0)  # changes nothing its actor shows: not told
    assert not any(isinstance(x, m.Beat) for x in ref.told)
    r.beats([beat(D1, 35.0)], now=35.0)  # a liveness timeout after the one it was told
    assert isinstance(ref.told[-1], m.Beat)
    assert ref.told[-1].at == 35.0
    r.info(D2, None, 0, now=11.0)  # an unknown id's info deleted: no actor made
    assert D2 not in start.refs
    assert r.summary()["heartbeats"] == 1


def test_interleaved_instances_are_warned_about_and_told(
    caplog: pytest.LogCaptureFixture,
) -> None:
    start = Started()
    r = roster(start)
    r.info(D1, INFO, 1, now=0.0)
    for i, instance in enumerate(["A", "B", "A"]):
        r.beats([beat(D1, float(i), instance)], now=float(i))
    assert "A and B" in caplog.text
    assert m.DeviceDuplicate(instances=("A", "B")) in start.refs[D1].told


def test_a_silent_device_is_forgotten_its_actor_told_and_its_keys_deleted() -> None:
    start, deleter, clock = Started(), Deleter(), Clock(0.0)
    r = roster(start, retention=100.0, deleter=deleter, clock=CoarseTimers(clock=clock))
    r.info(D1, INFO, 3, now=0.0)
    r.beats([beat(D1, 0.0)], now=0.0)
    r.beats([beat(D2, 0.0)], now=0.0)  # a stray
    forgotten = []
    for t in (10.0, 90.0, 150.0):
        r.beats([beat(DeviceId("alive"), t)], now=t)  # the fleet is not quiet
        forgotten += r.tick(now=t)
    assert sorted(f.device for f in forgotten) == [D1, D2]
    summary = r.summary()
    assert summary["forgotten"] == 2  # d1 and the stray d2
    assert isinstance(start.refs[D1].told[-1], m.DeviceForgotten)
    assert ("device-heartbeat", "heartbeat.d1", 1) in deleter.groups[0]
    assert summary["device_actors"] == 0
    assert summary["heartbeats"] == 1  # "alive" only


def test_the_tick_fires_the_liveness_checks_that_are_due(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock(100.0)
    timers = CoarseTimers(clock=clock)
    r = roster(Started(), clock=timers)
    ref = Ref()
    timers.tell_later(ref, m.LivenessCheck(), delay=5.0)  # type: ignore[arg-type]
    r.tick(now=104.0)
    assert ref.told == []
    r.tick(now=105.0)
    assert ref.told == [m.LivenessCheck()]
