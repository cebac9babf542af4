"""fleetctl logs / describe device when the device does not answer: one line, within the
timeout, saying what the buckets know of it, and a non-zero exit."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import pytest
from nats.aio.msg import Msg

from fleet.contracts import (
    BUCKET_DEVICE_HEARTBEAT,
    DeviceId,
    HeartbeatPayload,
    device_heartbeat_key,
    encode_heartbeat,
)
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats import subjects
from fleet.runtime.nats.bus import Bus
from tests.budgets import budget

from .conftest import Result

pytestmark = pytest.mark.timeout(90)


def beat(bus: Bus, loop: EventLoopThread, device: str, *, age: float) -> None:
    at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age)
    value = encode_heartbeat(HeartbeatPayload(device_id=DeviceId(device), at=at, seq=1))
    key = device_heartbeat_key(DeviceId(device))
    loop.run(bus.put(BUCKET_DEVICE_HEARTBEAT, key, value), timeout=10)


@pytest.mark.parametrize("command", [("describe", "device", "pi-7"), ("logs", "pi-7", "web")])
def test_an_offline_device_gets_one_line_within_the_timeout(
    ctl: Callable[..., Result], bus: Bus, event_loop_thread: EventLoopThread,
    command: tuple[str, ...],
) -> None:  # fmt: skip
    beat(bus, event_loop_thread, "pi-7", age=180)
    started = time.monotonic()
    result = ctl(*command, "--timeout", "2")
    assert time.monotonic() - started < budget(10)
    assert result.code == 1
    assert result.out == ""
    assert result.err.strip().splitlines() == [
        "fleetctl: device pi-7 did not answer within 2s (last heartbeat 3m ago: offline?)"
    ]


def test_a_device_never_seen_is_named_so(ctl: Callable[..., Result]) -> None:
    result = ctl("describe", "device", "ghost", "--timeout", "1")
    assert result.code == 1
    assert result.err.strip() == (
        "fleetctl: device ghost did not answer within 1s "
        "(no heartbeat ever seen from it: is the device id right?)"
    )


def test_a_device_that_listens_but_stays_silent_times_out(
    ctl: Callable[..., Result], bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    """Something listens on the subject (so no "no responders") and never answers: the
    timeout is kept, and the line says the device beats but its agent does not answer."""
    beat(bus, event_loop_thread, "pi-8", age=1)

    async def silent(msg: Msg) -> None:
        return None

    async def listen() -> None:
        await bus.nc.subscribe(subjects.device_request(DeviceId("pi-8"), "logs"), cb=silent)
        await bus.nc.flush()

    event_loop_thread.run(listen(), timeout=10)
    started = time.monotonic()
    result = ctl("logs", "pi-8", "web", "-f", "--timeout", "2")
    elapsed = time.monotonic() - started
    assert 2 <= elapsed < budget(15)
    assert result.code == 1
    assert len(result.err.strip().splitlines()) == 1
    assert "device pi-8 did not answer within 2s (last heartbeat " in result.err
    assert "ago: online, but its agent does not answer" in result.err


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (("logs", "pi 7", "web"), "invalid device id"),
        (("logs", "pi-7", "Web"), "deployment"),
        (("logs", "pi-7", "web", "no.such"), "container"),
    ],
)
def test_bad_names_are_usage_errors(
    ctl: Callable[..., Result], args: tuple[str, ...], why: str
) -> None:
    result = ctl(*args)
    assert result.code == 2
    assert why in result.err
