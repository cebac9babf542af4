"""A watch's lag, against a real nats-server: the entries its stream holds past what the
watch delivered; none once it caught up; a bucket that cannot be asked is skipped."""

from __future__ import annotations

import time

import pytest

from fleet.contracts import BUCKET_DEVICE_STATE
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.watch import Watch
from fleet.runtime.nats.watch_lag import WatchLag
from tests.fixtures.nats import NatsServer

pytestmark = pytest.mark.timeout(60)


def test_lag_is_what_the_stream_holds_past_the_watch(
    bus: Bus, event_loop_thread: EventLoopThread, nats_server: NatsServer
) -> None:
    loop = event_loop_thread
    seen: list[KvEntry] = []
    watch = Watch(bus.kv, BUCKET_DEVICE_STATE, name="lagging", on_entry=seen.append)
    published: list[tuple[str, int]] = []
    lag = WatchLag(
        bus.kv, {BUCKET_DEVICE_STATE: watch}, publish=lambda b, n: published.append((b, n))
    )
    for i in range(3):  # written while the watch has not read anything
        loop.run(bus.put(BUCKET_DEVICE_STATE, f"state.d{i}.web", b"{}"), timeout=10)
    assert loop.run(lag.sample(), timeout=10) == {BUCKET_DEVICE_STATE: 3}
    assert published == [(BUCKET_DEVICE_STATE, 3)]

    async def start() -> None:
        watch.start()

    loop.run(start(), timeout=10)
    try:
        until = time.monotonic() + 30.0
        while loop.run(lag.sample(), timeout=10) != {BUCKET_DEVICE_STATE: 0}:
            assert time.monotonic() < until, "the watch never caught up"
            time.sleep(0.05)
        assert len(seen) == 3
        nats_server.stop()  # a sample that cannot be taken is skipped, not raised
        assert loop.run(lag.sample(), timeout=30) == {}
    finally:
        nats_server.start()
        loop.run(watch.stop(), timeout=10)
