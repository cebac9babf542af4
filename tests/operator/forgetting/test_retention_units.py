"""Retention without servers: who is forgotten, when, with which keys; and when nobody is."""

from __future__ import annotations

from fleet.actors.operator.retention import Retention
from fleet.contracts import DeploymentName, DeviceId

D1, D2, D3 = DeviceId("d1"), DeviceId("d2"), DeviceId("d3")
WEB = DeploymentName("web")


def retention(**kw: float) -> Retention:
    return Retention(**{"retention": 100.0, "quiet": 10.0, "grace": 20.0, **kw})


def test_silent_device_is_forgotten_with_its_keys_heartbeat_first() -> None:
    r = retention()
    r.seen(D1, 1000.0, now=1000.0)
    r.beat_key(D1, 7)
    r.info_key(D1, 3)
    r.report_key(D1, WEB, 9)
    r.seen(D2, 1000.0, now=1000.0)
    r.seen(D2, 1200.0, now=1200.0)  # alive: keeps the fleet awake
    assert r.expired(now=1200.0) == []  # grace after start
    r.seen(D2, 1220.0, now=1220.0)
    (gone,) = r.expired(now=1221.0)
    assert gone.device == D1
    assert gone.last_seen == 1000.0
    assert gone.keys == (
        ("device-heartbeat", "heartbeat.d1", 7),
        ("device-info", "info.d1", 3),
        ("device-state", "state.d1.web", 9),
    )
    assert D1 not in r
    assert D2 in r
    assert r.expired(now=1221.0) == []


def test_a_sign_of_life_keeps_it_and_a_later_one_tracks_it_anew() -> None:
    r = retention()
    r.seen(D1, 0.0, now=0.0)
    r.seen(D1, 90.0, now=90.0)
    r.seen(D2, 105.0, now=105.0)
    r.expired(now=105.0)  # starts the grace
    r.seen(D2, 125.0, now=125.0)
    assert r.expired(now=125.0) == []  # d1 heard from at 90: not yet 100 s
    r.seen(D2, 195.0, now=195.0)
    assert [f.device for f in r.expired(now=195.0)] == [D1]
    r.seen(D1, 196.0, now=196.0)  # back
    assert D1 in r
    assert r.expired(now=196.0) == []


def test_nobody_is_forgotten_while_the_whole_fleet_is_quiet() -> None:
    r = retention()
    r.seen(D1, 0.0, now=0.0)
    r.seen(D2, 0.0, now=0.0)
    assert r.expired(now=500.0) == []  # nobody heard from for 500 s: cut off, not gone
    r.seen(D2, 500.0, now=500.0)
    assert r.expired(now=501.0) == []  # awake again: grace first
    r.seen(D2, 515.0, now=515.0)
    assert [f.device for f in r.expired(now=521.0)] == [D1]


def test_a_time_ahead_of_the_clock_counts_as_now_and_zero_disables() -> None:
    r = retention()
    r.seen(D1, 1e12, now=0.0)  # a clock in year 33658 does not keep it forever
    r.seen(D2, 150.0, now=150.0)
    r.expired(now=150.0)
    r.seen(D2, 175.0, now=175.0)
    assert [f.device for f in r.expired(now=175.0)] == [D1]
    off = retention(retention=0.0)
    off.seen(D1, 0.0, now=0.0)
    assert len(off) == 0
    assert off.expired(now=1e9) == []


def test_one_heap_entry_per_device_however_many_beats_and_a_limit_per_sweep() -> None:
    r = retention()
    for t in range(1000):
        r.seen(D1, float(t), now=float(t))
    assert len(r._heap) == 1
    for i in range(50):
        r.seen(DeviceId(f"x{i}"), 0.0, now=0.0)
    r.seen(D3, 1000.0, now=1000.0)
    r.expired(now=1000.0)
    r.seen(D3, 1020.0, now=1020.0)
    assert len(r.expired(now=1020.0, limit=20)) == 20
    assert len(r.expired(now=1020.0)) == 30
