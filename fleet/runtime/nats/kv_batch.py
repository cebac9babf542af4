"""Many KV writes with bounded concurrency, and KV watches delivered in batches.

Why it exists: the operator writes one desired-state entry per (device, deployment),
10,000-100,000 at a time, and reads every report of the fleet. One coroutine per write
submitted from an actor would be 100,000 futures; one ``tell`` per watched entry would be
100,000 actor messages. Here a batch of writes is one coroutine on the loop
(:mod:`fleet.runtime.nats.kv_publish`: at most ``in_flight`` writes unacknowledged), a
watch hands its entries over in batches (every entry that arrived in one turn of the
loop becomes one call), and a bucket only this process writes is read once at start
(:class:`SnapshotRead`) instead of watched.

What it must never do: block the loop, or reorder the entries of a watch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Callable, Sequence

from fleet.errors import FleetError
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.aiokit.tasks import create_guarded_task
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.kv_publish import KvPublisher, WriteResult
from fleet.runtime.nats.watch import Watch

logger = logging.getLogger(__name__)


class KvBatchWriter:
    """Puts and deletes in batches; results come back in the order of the items.

    Writes go through one :class:`~fleet.runtime.nats.kv_publish.KvPublisher` (a window of
    ``in_flight`` unacknowledged writes shared by every batch). :meth:`close` (from a
    non-loop thread) releases its inbox subscription.
    """

    def __init__(self, *, bus: Bus, loop_thread: EventLoopThread, in_flight: int = 256) -> None:
        self._bus = bus
        self._loop_thread = loop_thread
        self._publisher = KvPublisher(bus, in_flight=in_flight)

    def put_many(
        self, bucket: str, items: Sequence[tuple[str, bytes]]
    ) -> concurrent.futures.Future[list[WriteResult]]:
        return self._loop_thread.submit(self._publisher.write_many(bucket, items))

    def delete_many(
        self, bucket: str, keys: Sequence[str]
    ) -> concurrent.futures.Future[list[WriteResult]]:
        """Delete each key; a result is the delete marker's revision, or the error."""
        return self._loop_thread.submit(
            self._publisher.write_many(bucket, [(k, None) for k in keys])
        )

    def get_many(
        self, bucket: str, keys: Sequence[str]
    ) -> concurrent.futures.Future[list[KvEntry | BaseException | None]]:
        """Each key's live entry (None: absent or deleted), or the error reading it."""

        async def run() -> list[KvEntry | BaseException | None]:
            return await asyncio.gather(
                *(self._bus.get(bucket, k) for k in keys), return_exceptions=True
            )

        return self._loop_thread.submit(run())

    def close(self, *, timeout: float = 5.0) -> None:
        self._loop_thread.run(self._publisher.close(), timeout=timeout)


class BatchedWatch:
    """A :class:`~fleet.runtime.nats.watch.Watch` whose entries arrive as tuples.

    ``deliver(entries)`` and ``on_synced()`` run on the loop thread: they must only ``tell``.
    ``on_synced`` is called after every entry before it was delivered.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        bucket: str,
        key_filter: str = ">",
        name: str,
        deliver: Callable[[tuple[KvEntry, ...]], None],
        on_synced: Callable[[], None],
    ) -> None:
        self._bus = bus
        self._bucket = bucket
        self._filter = key_filter
        self._name = name
        self._deliver = deliver
        self._on_synced = on_synced
        self._pending: list[KvEntry] = []
        self._synced_pending = False
        self._scheduled = False
        self._watch: Watch | None = None

    async def start(self) -> None:
        """Start watching (await it on the loop)."""
        self._watch = self._bus.watch(
            self._bucket,
            self._filter,
            name=self._name,
            on_entry=self._on_entry,
            on_synced=self._synced,
        )

    async def stop(self) -> None:
        if self._watch is not None:
            await self._watch.stop()
            self._watch = None

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _on_entry(self, entry: KvEntry) -> None:
        self._pending.append(entry)
        self._schedule()

    def _synced(self) -> None:
        self._synced_pending = True
        self._schedule()

    def _flush(self) -> None:
        self._scheduled = False
        if self._pending:
            batch, self._pending = tuple(self._pending), []
            self._deliver(batch)
        if self._synced_pending:
            self._synced_pending = False
            self._on_synced()


class SnapshotRead:
    """A bucket read once, complete, then delivered in batches; no watch afterwards.

    For a bucket whose only writer is this process (the operator's desired-state): it
    needs the entries as they were at start, not an echo of its own writes. Same shape as
    :class:`BatchedWatch`: ``deliver`` and ``on_synced`` run on the loop thread. A failed
    read is logged and retried with backoff until it succeeds or :meth:`stop`.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        bucket: str,
        name: str,
        deliver: Callable[[tuple[KvEntry, ...]], None],
        on_synced: Callable[[], None],
        chunk: int = 10_000,
        timeout: float = 600.0,
    ) -> None:
        self._bus = bus
        self._bucket = bucket
        self._name = name
        self._deliver = deliver
        self._on_synced = on_synced
        self._chunk = chunk
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = create_guarded_task(self._run(), name=self._name, finishable=True)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = 0.2
        while True:
            try:
                entries = await self._bus.snapshot(self._bucket, ">", timeout=self._timeout)
                break
            except FleetError as exc:
                logger.warning("%s: reading %s failed: %s; retry in %.1fs", self._name,
                               self._bucket, exc, delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        ordered = sorted(entries.values(), key=lambda e: e.revision)
        for i in range(0, len(ordered), self._chunk):
            self._deliver(tuple(ordered[i : i + self._chunk]))
        self._on_synced()
