"""The per-device desired-state feed against a real nats-server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TypedDict, Unpack

import pytest

from fleet.contracts import BUCKET_DESIRED_STATE, DeviceId
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.desired_feed import DesiredFeed, resync_delay
from fleet.runtime.nats.kv import KvEntry
from tests.fixtures.nats import NatsServer


class Recorder:
    def __init__(self) -> None:
        self.entries: list[KvEntry] = []
        self.synced = threading.Event()
        self._lock = threading.Lock()

    def on_entry(self, entry: KvEntry) -> None:
        with self._lock:
            self.entries.append(entry)

    def latest(self) -> dict[str, KvEntry]:
        with self._lock:
            return {e.key: e for e in self.entries}

    def wait_for(self, check: Callable[[dict[str, KvEntry]], bool], *, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while not check(self.latest()):
            if time.monotonic() > deadline:
                raise AssertionError(f"feed never got there; saw {self.latest()}")
            time.sleep(0.02)


class FeedOptions(TypedDict, total=False):
    """What a test may set of a :class:`DesiredFeed` beyond its device and callbacks."""

    known: Mapping[str, int] | None
    resync_interval: float


@pytest.fixture
def feed_factory(
    bus: Bus, event_loop_thread: EventLoopThread
) -> Iterator[Callable[..., tuple[DesiredFeed, Recorder]]]:
    feeds: list[DesiredFeed] = []

    def make(device: str, **kwargs: Unpack[FeedOptions]) -> tuple[DesiredFeed, Recorder]:
        rec = Recorder()
        feed = DesiredFeed(
            kv=bus.kv,
            device_id=DeviceId(device),
            on_entry=rec.on_entry,
            on_synced=rec.synced.set,
            **kwargs,
        )

        async def start() -> None:
            feed.start()

        event_loop_thread.run(start(), timeout=5)
        feeds.append(feed)
        return feed, rec

    yield make
    for feed in feeds:
        event_loop_thread.run(feed.stop(), timeout=5)


def put(loop: EventLoopThread, bus: Bus, key: str, value: bytes) -> int:
    return loop.run(bus.put(BUCKET_DESIRED_STATE, key, value), timeout=5)


def test_initial_entries_are_exact_and_only_this_devices(
    bus: Bus,
    event_loop_thread: EventLoopThread,
    feed_factory: Callable[..., tuple[DesiredFeed, Recorder]],
) -> None:
    revs = {f"dev1.d{i}": put(event_loop_thread, bus, f"dev1.d{i}", b"v%d" % i) for i in range(50)}
    put(event_loop_thread, bus, "dev10.d1", b"other device")
    put(event_loop_thread, bus, "dev2.d1", b"other device")
    event_loop_thread.run(bus.delete(BUCKET_DESIRED_STATE, "dev1.d0"), timeout=5)
    del revs["dev1.d0"]
    _, rec = feed_factory("dev1")
    assert rec.synced.wait(5)
    assert {k: e.revision for k, e in rec.latest().items()} == revs
    assert len(rec.entries) == 49  # each exactly once


def test_live_puts_and_deletes_arrive_with_their_revisions(
    bus: Bus,
    event_loop_thread: EventLoopThread,
    feed_factory: Callable[..., tuple[DesiredFeed, Recorder]],
) -> None:
    _, rec = feed_factory("dev1")
    assert rec.synced.wait(5)
    rev = put(event_loop_thread, bus, "dev1.web", b"a")
    rec.wait_for(lambda s: "dev1.web" in s and s["dev1.web"].revision == rev)
    assert rec.latest()["dev1.web"].value == b"a"
    event_loop_thread.run(bus.delete(BUCKET_DESIRED_STATE, "dev1.web"), timeout=5)
    rec.wait_for(lambda s: s["dev1.web"].deleted)
    assert rec.latest()["dev1.web"].revision > rev


def test_no_update_lost_while_writes_race_the_initial_read(
    bus: Bus,
    event_loop_thread: EventLoopThread,
    feed_factory: Callable[..., tuple[DesiredFeed, Recorder]],
) -> None:
    stop = threading.Event()
    last: dict[str, int] = {}

    def writer() -> None:
        i = 0
        while not stop.is_set() and i < 2000:
            key = f"dev1.d{i % 20}"
            last[key] = put(event_loop_thread, bus, key, b"%d" % i)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.05)
    try:
        _, rec = feed_factory("dev1")
        assert rec.synced.wait(5)
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join(10)
    rec.wait_for(lambda s: {k: e.revision for k, e in s.items()} == last)
    per_key: dict[str, list[int]] = {}
    for entry in rec.entries:
        per_key.setdefault(entry.key, []).append(entry.revision)
    assert all(revs == sorted(set(revs)) for revs in per_key.values())  # never backwards


def test_changes_while_the_server_is_down_are_caught_up(
    bus: Bus,
    nats_server: NatsServer,
    event_loop_thread: EventLoopThread,
    feed_factory: Callable[..., tuple[DesiredFeed, Recorder]],
) -> None:
    put(event_loop_thread, bus, "dev1.keep", b"1")
    put(event_loop_thread, bus, "dev1.gone", b"1")
    feed, rec = feed_factory("dev1")
    assert rec.synced.wait(5)
    nats_server.stop()
    nats_server.start()
    # while our bus reconnects, another writer changes things
    other = Bus(urls=[nats_server.url], name="writer")

    async def write() -> int:
        await other.start()
        await other.wait_connected(timeout=10)
        rev = await other.put(BUCKET_DESIRED_STATE, "dev1.keep", b"2")
        await other.delete(BUCKET_DESIRED_STATE, "dev1.gone")
        await other.put(BUCKET_DESIRED_STATE, "dev1.new", b"n")
        await other.close()
        return rev

    rev = event_loop_thread.run(write(), timeout=15)
    rec.wait_for(
        lambda s: s["dev1.keep"].revision == rev and s["dev1.gone"].deleted and "dev1.new" in s,
        timeout=15,
    )
    assert feed.snapshots >= 2


def test_known_keys_deleted_while_away_are_reported_deleted(
    bus: Bus,
    event_loop_thread: EventLoopThread,
    feed_factory: Callable[..., tuple[DesiredFeed, Recorder]],
) -> None:
    rev = put(event_loop_thread, bus, "dev1.old", b"1")
    event_loop_thread.run(bus.delete(BUCKET_DESIRED_STATE, "dev1.old"), timeout=5)
    _, rec = feed_factory("dev1", known={"dev1.old": rev, "dev1.never": 3})
    assert rec.synced.wait(5)
    rec.wait_for(lambda s: {"dev1.old", "dev1.never"} <= set(s))
    latest = rec.latest()
    assert latest["dev1.old"].deleted
    assert latest["dev1.old"].revision > rev
    assert latest["dev1.never"].deleted


def test_the_feed_keeps_no_consumer(
    bus: Bus,
    event_loop_thread: EventLoopThread,
    feed_factory: Callable[..., tuple[DesiredFeed, Recorder]],
) -> None:
    put(event_loop_thread, bus, "dev1.web", b"1")
    for i in range(5):
        _, rec = feed_factory(f"dev{i}")
        assert rec.synced.wait(5)

    async def consumers() -> int:
        info = await bus.js.stream_info(f"KV_{BUCKET_DESIRED_STATE}")
        return int(info.state.consumer_count)

    deadline = time.monotonic() + 5
    while event_loop_thread.run(consumers(), timeout=5) != 0:
        assert time.monotonic() < deadline, "a consumer was left behind"
        time.sleep(0.05)


def test_periodic_snapshots_are_spread_so_devices_started_together_do_not_resync_together() -> None:
    delays = [resync_delay(300.0) for _ in range(2000)]
    assert all(225.0 <= d <= 375.0 for d in delays)
    assert max(delays) - min(delays) > 120.0  # spread over most of the 150 s range


def test_a_re_read_with_nothing_newer_makes_no_consumer_and_delivers_nothing(
    bus: Bus,
    event_loop_thread: EventLoopThread,
    feed_factory: Callable[..., tuple[DesiredFeed, Recorder]],
) -> None:
    put(event_loop_thread, bus, "dev1.web", b"1")
    put(event_loop_thread, bus, "dev2.web", b"other device: not this feed's business")
    feed, rec = feed_factory("dev1", resync_interval=0.2)
    assert rec.synced.wait(5)
    deadline = time.monotonic() + 10
    while feed.unchanged < 3:  # three periodic re-reads came and found nothing newer
        assert time.monotonic() < deadline, f"re-reads: {feed.unchanged} unchanged"
        time.sleep(0.05)
    assert feed.snapshots == 1  # only the first read used a consumer
    assert len(rec.entries) == 1

    rev = put(event_loop_thread, bus, "dev1.web", b"2")
    rec.wait_for(lambda s: s["dev1.web"].revision == rev)


def test_a_write_missed_by_the_live_stream_is_found_by_the_next_re_read(
    bus: Bus,
    event_loop_thread: EventLoopThread,
    feed_factory: Callable[..., tuple[DesiredFeed, Recorder]],
) -> None:
    put(event_loop_thread, bus, "dev1.web", b"1")
    feed, rec = feed_factory("dev1", resync_interval=0.3)
    assert rec.synced.wait(5)
    # a slow consumer's lost message (mypy checks a method assigned on an instance against
    # the unbound signature, self included: hence the second code)
    feed._on_message = _drop  # type: ignore[method-assign, assignment]
    event_loop_thread.run(_resubscribe(feed), timeout=5)
    rev = put(event_loop_thread, bus, "dev1.api", b"new")
    rec.wait_for(lambda s: "dev1.api" in s and s["dev1.api"].revision == rev, timeout=10)
    assert feed.snapshots >= 2


def _drop(_msg: object) -> None:
    return None


async def _resubscribe(feed: DesiredFeed) -> None:
    """Make the feed's core subscription deliver to the (patched) ``_on_message``."""
    assert feed._sub is not None
    await feed._sub.unsubscribe()
    feed._sub = None
    await feed._subscribe()


def test_a_periodic_re_read_waits_while_live_reads_are_catching_up(
    bus: Bus,
    event_loop_thread: EventLoopThread,
    feed_factory: Callable[..., tuple[DesiredFeed, Recorder]],
) -> None:
    put(event_loop_thread, bus, "dev1.web", b"1")
    feed, rec = feed_factory("dev1", resync_interval=0.1)
    assert rec.synced.wait(5)
    feed._reading["dev1.web"] = False  # as if a live read of it were in flight
    time.sleep(0.2)
    before = feed.unchanged + feed.snapshots
    time.sleep(0.8)  # several periods
    assert feed.unchanged + feed.snapshots == before
    del feed._reading["dev1.web"]
    deadline = time.monotonic() + 5
    while feed.unchanged + feed.snapshots == before:
        assert time.monotonic() < deadline, "the re-reads never resumed"
        time.sleep(0.05)
