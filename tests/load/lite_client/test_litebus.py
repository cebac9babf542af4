"""LiteBus speaks to the same buckets as Bus: interop, errors, the desired feed, a device."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_STATE,
    DeviceId,
    convert_score,
    decode_state,
    encode_score,
)
from fleet.errors import BusError, BusUnavailable
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.desired_feed import DesiredFeed
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.server import free_port
from fleet.runtime.nats.transport import Subscription
from fleet.runtime.nats.watch import Watch
from loadtest.device import DeviceBehaviour, SimulatedDevice
from loadtest.litebus import LiteBus
from tests.fixtures.nats import NatsServer

STREAM = f"KV_{BUCKET_DESIRED_STATE}"
SCORE = encode_score(
    convert_score({"type": "podman", "containers": [{"name": "web", "image": "busybox:1"}]})
)


def consumers_on(loop: EventLoopThread, bus: Bus) -> int:
    info = loop.run(bus.js.stream_info(STREAM), timeout=5)
    return int(info.state.consumer_count)


def test_a_lite_put_is_what_bus_gets_and_a_bus_put_what_lite_gets(
    litebus: LiteBus, bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    run = event_loop_thread.run
    revision = run(litebus.put(BUCKET_DEVICE_STATE, "state.d1.web", b'{"v": 1}'), timeout=5)
    entry = run(bus.get(BUCKET_DEVICE_STATE, "state.d1.web"), timeout=5)
    assert entry == KvEntry(
        bucket=BUCKET_DEVICE_STATE, key="state.d1.web", value=b'{"v": 1}', revision=revision
    )

    written = run(bus.put(BUCKET_DESIRED_STATE, "d1.web", b"desired"), timeout=5)
    seen = run(litebus.get(BUCKET_DESIRED_STATE, "d1.web"), timeout=5)
    assert seen == KvEntry(
        bucket=BUCKET_DESIRED_STATE, key="d1.web", value=b"desired", revision=written
    )
    assert run(litebus.last_revision(BUCKET_DESIRED_STATE, "d1.*"), timeout=5) == written
    assert run(bus.last_revision(BUCKET_DESIRED_STATE, "d1.*"), timeout=5) == written
    assert run(litebus.last_revision(BUCKET_DESIRED_STATE, "d2.*"), timeout=5) == 0

    run(bus.delete(BUCKET_DESIRED_STATE, "d1.web"), timeout=5)
    assert run(litebus.get(BUCKET_DESIRED_STATE, "d1.web"), timeout=5) is None
    assert run(litebus.get(BUCKET_DESIRED_STATE, "never.written"), timeout=5) is None


def test_revisions_from_lite_puts_increase_as_the_stream_stores_them(
    litebus: LiteBus, bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    async def many() -> list[int]:
        return list(
            await asyncio.gather(
                *(litebus.put(BUCKET_DEVICE_STATE, f"state.d{i}.x", b"v") for i in range(500))
            )
        )

    revisions = event_loop_thread.run(many(), timeout=30)
    assert sorted(revisions) == list(range(1, 501))
    last = event_loop_thread.run(bus.get(BUCKET_DEVICE_STATE, "state.d499.x"), timeout=5)
    assert last is not None
    assert last.revision == revisions[-1]


def test_a_put_to_a_bucket_that_does_not_exist_names_bucket_and_key(
    litebus: LiteBus, event_loop_thread: EventLoopThread
) -> None:
    with pytest.raises(BusUnavailable, match=r"put no-such-bucket/some\.key: no responders"):
        event_loop_thread.run(litebus.put("no-such-bucket", "some.key", b"v"), timeout=10)


def test_an_error_acknowledgement_names_bucket_and_key(
    litebus: LiteBus, bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    async def small_bucket() -> None:
        await bus.js.create_key_value(bucket="tiny", history=1, max_value_size=8)

    event_loop_thread.run(small_bucket(), timeout=10)
    with pytest.raises(BusError, match=r"put tiny/k\.1: .*err_code 10054"):
        event_loop_thread.run(litebus.put("tiny", "k.1", b"far more than eight bytes"), timeout=10)
    assert event_loop_thread.run(litebus.put("tiny", "k.1", b"ok"), timeout=10) == 1


def test_missing_buckets_are_named_not_created(
    nats_server: NatsServer, event_loop_thread: EventLoopThread
) -> None:
    lb = LiteBus(urls=[nats_server.url], name="no-buckets")

    async def scenario() -> None:
        await lb.start()
        await lb.wait_connected(timeout=10)
        try:
            with pytest.raises(
                BusError, match=r"bucket 'desired-state' \(stream KV_desired-state\)"
            ):
                await lb.ensure_buckets()
        finally:
            await lb.close()

    event_loop_thread.run(scenario(), timeout=15)


def test_an_unreachable_server_and_a_lost_one_are_bus_unavailable(
    litebus: LiteBus, nats_server: NatsServer, event_loop_thread: EventLoopThread
) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    nowhere = LiteBus(urls=[url], name="nowhere")

    async def unreachable() -> None:
        await nowhere.start()
        with pytest.raises(BusUnavailable, match=f"cannot connect to NATS at {url}"):
            await nowhere.wait_connected(timeout=5)
        await nowhere.close()

    event_loop_thread.run(unreachable(), timeout=10)

    nats_server.stop()

    async def lost() -> None:
        await asyncio.wait_for(litebus.client.closed.wait(), 5)
        with pytest.raises(BusUnavailable, match="does not reconnect"):
            await litebus.wait_connected(timeout=None)
        with pytest.raises(BusUnavailable, match=r"put device-state/state\.x\.y"):
            await litebus.put(BUCKET_DEVICE_STATE, "state.x.y", b"v")

    event_loop_thread.run(lost(), timeout=10)


class Delivered:
    def __init__(self) -> None:
        self.entries: list[KvEntry] = []
        self.synced = threading.Event()
        self._lock = threading.Lock()

    def on_entry(self, entry: KvEntry) -> None:
        with self._lock:
            self.entries.append(entry)

    def wait_for(self, check: Callable[[list[KvEntry]], bool], *, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if check(list(self.entries)):
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"never happened; delivered: {self.entries}")
            time.sleep(0.02)


@pytest.fixture
def feed_over_litebus(
    litebus: LiteBus, bus: Bus, event_loop_thread: EventLoopThread
) -> Iterator[Callable[[str], Delivered]]:
    feeds: list[DesiredFeed] = []

    def start(device: str) -> Delivered:
        delivered = Delivered()

        async def go() -> None:
            feed = DesiredFeed(
                kv=litebus.kv,
                device_id=DeviceId.try_new(device),
                on_entry=delivered.on_entry,
                on_synced=delivered.synced.set,
            )
            feed.start()
            feeds.append(feed)

        event_loop_thread.run(go(), timeout=5)
        assert delivered.synced.wait(10), "feed over LiteBus never synced"
        return delivered

    yield start
    for feed in feeds:
        event_loop_thread.run(feed.stop(), timeout=10)


def test_desired_feed_over_litebus_reads_existing_entries_then_follows_changes(
    litebus: LiteBus,
    bus: Bus,
    event_loop_thread: EventLoopThread,
    feed_over_litebus: Callable[[str], Delivered],
) -> None:
    run = event_loop_thread.run
    before = {
        key: run(bus.put(BUCKET_DESIRED_STATE, key, f"v-{key}".encode()), timeout=5)
        for key in ("dev-1.a", "dev-1.b", "dev-1.c")
    }
    run(bus.put(BUCKET_DESIRED_STATE, "dev-2.a", b"not mine"), timeout=5)
    created: list[str] = []  # consumer create requests, as another client sees them on the wire

    async def spy() -> Subscription:
        subject = f"$JS.API.CONSUMER.CREATE.{STREAM}.>"
        sub = await bus.transport.subscribe(subject, lambda msg: created.append(msg.subject))
        await bus.transport.flush(timeout=5)
        return sub

    spying = run(spy(), timeout=5)
    delivered = feed_over_litebus("dev-1")
    run(spying.unsubscribe(), timeout=5)

    assert len(created) == 1  # the initial read went through a consumer (mark > 0)
    name = created[0].split(".")[5]
    assert name.startswith("feed_dev-1_")
    assert created[0].endswith(".$KV.desired-state.dev-1.*")  # the filter is in the subject
    assert {(e.key, e.value, e.revision) for e in delivered.entries} == {
        (key, f"v-{key}".encode(), rev) for key, rev in before.items()
    }
    assert consumers_on(event_loop_thread, bus) == 0  # and was deleted at once

    updated = run(bus.put(BUCKET_DESIRED_STATE, "dev-1.a", b"v2"), timeout=5)
    added = run(bus.put(BUCKET_DESIRED_STATE, "dev-1.d", b"new"), timeout=5)
    run(bus.put(BUCKET_DESIRED_STATE, "dev-2.b", b"not mine either"), timeout=5)
    run(bus.delete(BUCKET_DESIRED_STATE, "dev-1.b"), timeout=5)
    # Each key is resolved by its own reader (docs/agent.md): order holds per key, not
    # across keys, so wait for all three and read them in revision order.
    delivered.wait_for(lambda es: len(es) >= 6)
    live = sorted(
        ((e.key, e.value, e.revision, e.operation) for e in delivered.entries[3:]),
        key=lambda item: item[2],
    )
    deleted_revision = run(bus.last_revision(BUCKET_DESIRED_STATE, "dev-1.b"), timeout=5)
    assert live == [
        ("dev-1.a", b"v2", updated, "PUT"),
        ("dev-1.d", b"new", added, "PUT"),
        ("dev-1.b", b"", deleted_revision, "DEL"),
    ]
    assert all(e.key.startswith("dev-1.") for e in delivered.entries)


def test_desired_feed_over_litebus_with_nothing_stored_syncs_without_a_consumer(
    litebus: LiteBus,
    bus: Bus,
    event_loop_thread: EventLoopThread,
    feed_over_litebus: Callable[[str], Delivered],
) -> None:
    delivered = feed_over_litebus("dev-9")
    assert delivered.entries == []
    revision = event_loop_thread.run(bus.put(BUCKET_DESIRED_STATE, "dev-9.web", b"x"), timeout=5)
    delivered.wait_for(lambda es: [(e.key, e.revision) for e in es] == [("dev-9.web", revision)])
    assert consumers_on(event_loop_thread, bus) == 0


@pytest.fixture
def device_reports(bus: Bus, event_loop_thread: EventLoopThread) -> Iterator[Delivered]:
    rec = Delivered()
    holder: list[Watch] = []

    async def start() -> None:
        holder.append(bus.watch(BUCKET_DEVICE_STATE, ">", name="reports", on_entry=rec.on_entry))

    event_loop_thread.run(start(), timeout=5)
    yield rec
    event_loop_thread.run(holder[0].stop(), timeout=5)


def phases(entries: list[KvEntry], key: str) -> list[tuple[str, int]]:
    states = [decode_state(e.value) for e in entries if e.key == key]
    return [(s.phase.value, s.desired_revision) for s in states]


@pytest.mark.parametrize("written_before_start", [False, True])
def test_a_simulated_device_over_litebus_reports_running(
    litebus: LiteBus,
    bus: Bus,
    event_loop_thread: EventLoopThread,
    device_reports: Delivered,
    written_before_start: bool,
) -> None:
    run = event_loop_thread.run
    behaviour = DeviceBehaviour(
        pending_s=0.01, pulling_s=0.01, starting_s=0.01, coalesce=False, heartbeat_interval_s=0
    )
    device = SimulatedDevice(
        bus=litebus,  # a Bus on the lean client
        device_id="sim-lite",
        labels={"site": "lab"},
        behaviour=behaviour,
    )
    revision = 0
    if written_before_start:
        revision = run(bus.put(BUCKET_DESIRED_STATE, "sim-lite.web", SCORE), timeout=5)
    run(device.start(), timeout=10)
    try:
        if not written_before_start:
            revision = run(bus.put(BUCKET_DESIRED_STATE, "sim-lite.web", SCORE), timeout=5)
        key = "state.sim-lite.web"
        device_reports.wait_for(lambda es: ("Running", revision) in phases(es, key))
        assert phases(device_reports.entries, key) == [
            ("Pending", revision),
            ("Pulling", revision),
            ("Starting", revision),
            ("Running", revision),
        ]
        assert run(bus.get("device-info", "info.sim-lite"), timeout=5) is not None
    finally:
        run(device.stop(), timeout=10)
    assert consumers_on(event_loop_thread, bus) == 0
