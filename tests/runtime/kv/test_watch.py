"""Watches and snapshots: complete at start, ordered, and surviving a server restart."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from fleet.contracts import BUCKET_DESIRED_STATE, BUCKET_DEVICE_STATE
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.watch import Watch
from tests.fixtures.nats import NatsServer


async def put_many(bus: Bus, bucket: str, items: dict[str, bytes]) -> None:
    """Write concurrently (bounded in flight), as the operator does."""
    sem = asyncio.Semaphore(256)

    async def one(key: str, value: bytes) -> None:
        async with sem:
            await bus.put(bucket, key, value)

    await asyncio.gather(*(one(k, v) for k, v in items.items()))


class Recorder:
    """Collects what a watch delivers (on the loop thread) for the test thread."""

    def __init__(self) -> None:
        self.entries: list[KvEntry] = []
        self.entries_at_sync: int | None = None
        self.synced = threading.Event()
        self._lock = threading.Lock()

    def on_entry(self, entry: KvEntry) -> None:
        with self._lock:
            self.entries.append(entry)

    def on_synced(self) -> None:
        with self._lock:
            self.entries_at_sync = len(self.entries)
        self.synced.set()

    def latest(self) -> dict[str, KvEntry]:
        with self._lock:
            out: dict[str, KvEntry] = {}
            for e in self.entries:
                if e.deleted:
                    out.pop(e.key, None)
                else:
                    out[e.key] = e
            return out

    def wait_for(self, check: Callable[[dict[str, KvEntry]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check(self.latest()):
                return True
            time.sleep(0.02)
        return False


def start_watch(
    loop: EventLoopThread, bus: Bus, key_filter: str, rec: Recorder, *, raw: bool = False
) -> Watch:
    """``raw``: deliveries taken as bytes from nats-py's parser (fleet/runtime/nats/raw.py),
    as the operator's heartbeat watch does; every guarantee must hold the same."""

    async def go() -> Watch:
        watch = Watch(bus.kv, BUCKET_DESIRED_STATE, key_filter, name="test-watch",
                      on_entry=rec.on_entry, on_synced=rec.on_synced, raw=raw)  # fmt: skip
        watch.start()
        return watch

    return loop.run(go(), timeout=5)


RAW = pytest.mark.parametrize("raw", [False, True], ids=["natspy", "raw"])


@RAW
def test_initial_values_are_complete_when_synced(
    bus: Bus, event_loop_thread: EventLoopThread, raw: bool
) -> None:
    items = {f"dev-{i:05d}.web": f"v{i}".encode() for i in range(5000)}
    items.update({f"dev-{i:05d}.db": b"gone" for i in range(100)})
    event_loop_thread.run(put_many(bus, BUCKET_DESIRED_STATE, items), timeout=60)

    async def delete_some() -> None:
        for i in range(100):
            await bus.delete(BUCKET_DESIRED_STATE, f"dev-{i:05d}.db")

    event_loop_thread.run(delete_some(), timeout=30)
    rec = Recorder()
    watch = start_watch(event_loop_thread, bus, ">", rec, raw=raw)
    try:
        assert rec.synced.wait(30)
        assert rec.entries_at_sync is not None
        at_sync = rec.entries[: rec.entries_at_sync]
        live = {e.key: e.value for e in at_sync if not e.deleted}
        assert live == {k: v for k, v in items.items() if k.endswith(".web")}
        revisions = [e.revision for e in rec.entries]
        assert revisions == sorted(revisions)
        assert len(set(revisions)) == len(revisions)
    finally:
        event_loop_thread.run(watch.stop(), timeout=5)


def test_snapshot_filters_by_key_and_is_complete(
    bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    items = {f"pi-{d}.dep-{n}": f"{d}/{n}".encode() for d in range(50) for n in range(3)}
    event_loop_thread.run(put_many(bus, BUCKET_DESIRED_STATE, items), timeout=30)
    event_loop_thread.run(bus.delete(BUCKET_DESIRED_STATE, "pi-7.dep-1"), timeout=5)
    snap = event_loop_thread.run(bus.snapshot(BUCKET_DESIRED_STATE, "pi-7.>"), timeout=30)
    assert {k: e.value for k, e in snap.items()} == {"pi-7.dep-0": b"7/0", "pi-7.dep-2": b"7/2"}
    assert event_loop_thread.run(bus.snapshot(BUCKET_DESIRED_STATE, "nobody.>"), timeout=5) == {}
    assert event_loop_thread.run(bus.snapshot(BUCKET_DEVICE_STATE), timeout=5) == {}


@RAW
def test_live_changes_arrive_in_order_with_deletes(
    bus: Bus, event_loop_thread: EventLoopThread, raw: bool
) -> None:
    rec = Recorder()
    watch = start_watch(event_loop_thread, bus, "pi-01.>", rec, raw=raw)
    try:
        assert rec.synced.wait(10)  # empty bucket: synced at once
        run = event_loop_thread.run
        run(bus.put(BUCKET_DESIRED_STATE, "pi-01.web", b"1"), timeout=5)
        run(bus.put(BUCKET_DESIRED_STATE, "pi-02.web", b"not mine"), timeout=5)
        run(bus.put(BUCKET_DESIRED_STATE, "pi-01.web", b"2"), timeout=5)
        run(bus.put(BUCKET_DESIRED_STATE, "pi-01.db", b"3"), timeout=5)
        run(bus.delete(BUCKET_DESIRED_STATE, "pi-01.web"), timeout=5)
        assert rec.wait_for(lambda m: m.keys() == {"pi-01.db"}, timeout=10)
        assert [(e.key, e.value, e.operation) for e in rec.entries] == [
            ("pi-01.web", b"1", "PUT"),
            ("pi-01.web", b"2", "PUT"),
            ("pi-01.db", b"3", "PUT"),
            ("pi-01.web", b"", "DEL"),
        ]
    finally:
        event_loop_thread.run(watch.stop(), timeout=5)


async def hpub(url: str, subject: str, headers: bytes, payload: bytes) -> None:
    """Publish with a header block as given, bytes and all (nats-py would build a clean
    one): what a hostile writer of its own key can store."""
    host, _, port = url.removeprefix("nats://").rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        await reader.readline()  # INFO
        writer.write(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n')
        size = len(headers) + len(payload)
        writer.write(f"HPUB {subject} {len(headers)} {size}\r\n".encode())
        writer.write(headers + payload + b"\r\nPING\r\n")
        await writer.drain()
        while not (line := await reader.readline()).startswith(b"PONG"):
            assert not line.startswith(b"-ERR"), line
    finally:
        writer.close()
        await writer.wait_closed()


@RAW
def test_an_entry_with_a_junk_header_block_does_not_stop_the_watch(
    bus: Bus, nats_server: NatsServer, event_loop_thread: EventLoopThread, raw: bool
) -> None:
    rec = Recorder()
    watch = start_watch(event_loop_thread, bus, ">", rec, raw=raw)
    try:
        assert rec.synced.wait(10)
        run = event_loop_thread.run
        junk = b"NATS/1.0\r\nbogus\r\nX: \xff\r\n\r\n"
        run(hpub(nats_server.url, f"$KV.{BUCKET_DESIRED_STATE}.pi-09.web", junk, b"j"),
            timeout=10)  # fmt: skip
        run(bus.put(BUCKET_DESIRED_STATE, "pi-01.web", b"after"), timeout=5)
        assert rec.wait_for(lambda m: "pi-01.web" in m, timeout=15), "stuck at the junk entry"
        assert [(e.key, e.value) for e in rec.entries] == [
            ("pi-09.web", b"j"), ("pi-01.web", b"after")
        ]  # fmt: skip
    finally:
        event_loop_thread.run(watch.stop(), timeout=5)


@RAW
def test_watch_resumes_after_server_restart_without_loss(
    bus: Bus, nats_server: NatsServer, event_loop_thread: EventLoopThread, raw: bool
) -> None:
    rec = Recorder()
    watch = start_watch(event_loop_thread, bus, ">", rec, raw=raw)
    run = event_loop_thread.run
    try:
        assert rec.synced.wait(10)
        run(bus.put(BUCKET_DESIRED_STATE, "pi-01.web", b"before"), timeout=5)
        assert rec.wait_for(lambda m: "pi-01.web" in m, timeout=10)

        nats_server.restart()
        # another writer changes things as soon as the server is back, racing our reconnect
        writer = Bus(urls=[nats_server.url], name="writer")

        async def write() -> None:
            await writer.start()
            await writer.wait_connected(timeout=10)
            await writer.put(BUCKET_DESIRED_STATE, "pi-01.web", b"after")
            await writer.put(BUCKET_DESIRED_STATE, "pi-02.web", b"new")
            await writer.delete(BUCKET_DESIRED_STATE, "pi-01.web")
            await writer.put(BUCKET_DESIRED_STATE, "pi-03.web", b"new")
            await writer.close()

        run(write(), timeout=20)
        assert rec.wait_for(lambda m: m.keys() == {"pi-02.web", "pi-03.web"}, timeout=20), [
            (e.key, e.operation, e.revision) for e in rec.entries
        ]
        # and it keeps going after the restart
        run(bus.put(BUCKET_DESIRED_STATE, "pi-04.web", b"later"), timeout=10)
        assert rec.wait_for(lambda m: "pi-04.web" in m, timeout=10)
        revisions = [e.revision for e in rec.entries]
        assert revisions == sorted(set(revisions))
    finally:
        run(watch.stop(), timeout=5)


def test_snapshot_leaves_no_consumer_behind(bus: Bus, event_loop_thread: EventLoopThread) -> None:
    """A fleet reconnecting at once must not pile up consumers against the stream's cap."""
    run = event_loop_thread.run
    run(bus.put(BUCKET_DESIRED_STATE, "pi-01.web", b"1"), timeout=5)
    for _ in range(3):
        assert run(bus.snapshot(BUCKET_DESIRED_STATE, "pi-01.>"), timeout=10).keys() == {
            "pi-01.web"
        }

    async def consumers() -> int:
        info = await bus.js.stream_info(f"KV_{BUCKET_DESIRED_STATE}")
        return int(info.state.consumer_count)

    assert run(consumers(), timeout=5) == 0


def test_no_consumer_is_left_after_a_restart_mid_watch_and_a_read(
    bus: Bus, nats_server: NatsServer, event_loop_thread: EventLoopThread
) -> None:
    run = event_loop_thread.run
    rec = Recorder()
    watch = start_watch(event_loop_thread, bus, ">", rec)
    try:
        assert rec.synced.wait(10)
        run(bus.put(BUCKET_DESIRED_STATE, "pi-01.web", b"before"), timeout=5)
        assert rec.wait_for(lambda m: "pi-01.web" in m, timeout=10)
        nats_server.restart()
        run(bus.wait_connected(timeout=15), timeout=20)
        run(bus.put(BUCKET_DESIRED_STATE, "pi-02.web", b"after"), timeout=10)
        assert rec.wait_for(lambda m: "pi-02.web" in m, timeout=20)
        assert run(bus.snapshot(BUCKET_DESIRED_STATE), timeout=10).keys() == {
            "pi-01.web",
            "pi-02.web",
        }
    finally:
        run(watch.stop(), timeout=5)

    async def consumers() -> int:
        info = await bus.js.stream_info(f"KV_{BUCKET_DESIRED_STATE}")
        return int(info.state.consumer_count)

    assert run(consumers(), timeout=5) == 0


def test_batched_watches_and_one_time_reads_hand_over_tuples(
    bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    run = event_loop_thread.run
    items = {f"dev-{i:04d}.web": b"v" for i in range(300)}
    run(put_many(bus, BUCKET_DESIRED_STATE, items), timeout=30)
    run(bus.delete(BUCKET_DESIRED_STATE, "dev-0000.web"), timeout=5)
    batches: dict[str, list[tuple[KvEntry, ...]]] = {"follow": [], "once": []}
    synced = {"follow": threading.Event(), "once": threading.Event()}

    async def go() -> list[Watch]:
        return [
            bus.watch(
                BUCKET_DESIRED_STATE,
                name=f"test-{kind}",
                on_batch=batches[kind].append,
                on_synced=synced[kind].set,
                follow=kind == "follow",
                batch_limit=100,
            )
            for kind in ("follow", "once")
        ]

    watches = run(go(), timeout=5)
    try:
        assert synced["follow"].wait(10)
        assert synced["once"].wait(10)
        run(bus.put(BUCKET_DESIRED_STATE, "dev-0001.web", b"new"), timeout=5)
        deadline = time.monotonic() + 10
        while not any(e.value == b"new" for b in batches["follow"] for e in b):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        once = [e for b in batches["once"] for e in b]
        assert all(len(b) <= 100 for kind in batches for b in batches[kind])
        assert {e.key for e in once} == set(items) - {"dev-0000.web"}  # live only, once
        assert not any(e.value == b"new" for e in once)  # and nothing after
        followed = [e.revision for b in batches["follow"] for e in b]
        assert followed == sorted(set(followed))
    finally:
        for watch in watches:
            run(watch.stop(), timeout=5)


def test_batched_deletes_that_are_compare_and_swaps(
    bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    from fleet.errors import RevisionMismatch
    from fleet.runtime.nats.kv_batch import KvBatchWriter

    run = event_loop_thread.run
    keys = [f"gone-{i}.web" for i in range(5)]  # a fresh bucket: nothing else in it
    revisions = [run(bus.put(BUCKET_DESIRED_STATE, k, b"v"), timeout=5) for k in keys]
    run(bus.put(BUCKET_DESIRED_STATE, keys[3], b"written again"), timeout=5)
    writer = KvBatchWriter(kv=bus.kv, loop_thread=event_loop_thread)
    try:
        results = writer.delete_many(BUCKET_DESIRED_STATE, keys, last=revisions).result(10)
    finally:
        writer.close()
    assert isinstance(results[3], RevisionMismatch)
    assert all(isinstance(r, int) for i, r in enumerate(results) if i != 3)
    left = run(bus.snapshot(BUCKET_DESIRED_STATE), timeout=10)
    assert left.keys() == {keys[3]}
