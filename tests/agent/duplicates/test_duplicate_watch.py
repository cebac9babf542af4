"""The duplicate watch on a real nats-server: who it names, how often, and hostile bytes."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

import pytest

from fleet.contracts import (
    BUCKET_DEVICE_HEARTBEAT,
    DeviceId,
    HeartbeatPayload,
    device_heartbeat_key,
    encode_heartbeat,
)
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.heartbeat_watch import DuplicateWatch
from tests.agent.conftest import wait_for

DEVICE = DeviceId("pi-dup")
KEY = device_heartbeat_key(DEVICE)


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def watch(bus: Bus, event_loop_thread: EventLoopThread) -> Iterator[tuple[DuplicateWatch, Clock]]:
    clock = Clock()
    watch = DuplicateWatch(
        transport=bus.transport, device_id=DEVICE, instance_id="mine", clock=clock
    )

    async def start() -> None:
        watch.start()

    event_loop_thread.run(start(), timeout=5)
    yield watch, clock
    event_loop_thread.run(watch.stop(), timeout=5)


def beat(instance: str | None, seq: int = 0, device: str = DEVICE) -> bytes:
    payload = HeartbeatPayload(
        device_id=DeviceId(device), at=dt.datetime.now(dt.UTC), seq=seq, instance_id=instance
    )
    return encode_heartbeat(payload)


def test_another_instance_is_logged_once_per_interval_and_garbage_ignored(
    watch: tuple[DuplicateWatch, Clock],
    bus: Bus,
    event_loop_thread: EventLoopThread,
    caplog: pytest.LogCaptureFixture,
) -> None:
    watcher, clock = watch
    caplog.set_level(logging.ERROR, logger="fleet.runtime.nats.heartbeat_watch")

    def put(value: bytes) -> None:
        event_loop_thread.run(bus.put(BUCKET_DEVICE_HEARTBEAT, KEY, value), timeout=5)

    def errors() -> list[str]:
        return [r.getMessage() for r in caplog.records]

    wait_for(lambda: watcher._sub is not None, what="subscribed")
    for value in (b"[" * 500 + b"]" * 500, b"\xff", beat("mine"), beat(None)):
        put(value)  # ignored: hostile, its own, an older agent without an id
    put(beat("theirs", seq=1))
    wait_for(lambda: len(errors()) == 1, what="the first report")
    assert DEVICE in errors()[0]
    assert "instance theirs" in errors()[0]
    assert "instance mine" in errors()[0]
    for seq in range(2, 5):
        put(beat("theirs", seq=seq))  # within the interval: seen, not logged again
    put(beat("third", seq=5))
    wait_for(lambda: watcher.others == {"theirs", "third"}, what="all beats seen")
    assert len(errors()) == 1
    clock.now += 61
    put(beat("theirs", seq=6))
    wait_for(lambda: len(errors()) == 2, what="the report a minute later")
