"""Watch a bucket: complete at start, every revision once and in order, across server restarts.

Why it exists: the operator follows three buckets of the whole fleet (100,000s of
entries) and must neither start from a partial picture nor miss a change. A
:class:`Watch` gives each guarantee by construction:

* **Complete initial values.** Before each consumer it reads the mark, the highest
  revision among the matching keys (a last-by-subject lookup); ``on_synced`` is called
  once an entry at or past it was delivered. The consumer delivers the last value per
  key in stream order, so nothing before it is missing.
* **Every revision once, in order.** Deliveries come from one
  :class:`~fleet.runtime.nats.consumer.PushConsumer` at a time, which stops at the
  first sign of a lost message (a gap in its consumer sequence, a heartbeat that
  disagrees, silence); revisions at or below the last one delivered are skipped.
* **No loss across outages.** After every reconnect, and whenever the consumer broke,
  the consumer is deleted and a new one starts right after the last revision delivered.
  With one value kept per key, that replays exactly the keys that changed meanwhile
  (deletes included, as delete markers).
* If the store was wiped (the stream is behind the last revision delivered), it reads
  everything again.

Batching is an option: with ``on_batch`` instead of ``on_entry``, the entries that
arrived in one turn of the loop are handed over as one tuple (at most ``batch_limit``),
one ``tell`` instead of thousands. With ``follow=False`` the watch is a read delivered
the same way: the live entries complete as of its start (in revision order, no delete
markers), ``on_synced``, and nothing after; a failed read is retried until it succeeds
or the watch is stopped (the operator reads the desired state it alone writes so).

What it must never do: block in a callback (they run on the loop: ``tell`` an actor),
call ``on_synced`` before the initial values are all out, or deliver a revision twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec

from fleet.errors import FleetError
from fleet.runtime.aiokit.tasks import cancel_and_wait, create_guarded_task
from fleet.runtime.nats.consumer import ConsumerSpec, PushConsumer
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.kvstore import KvStore
from fleet.runtime.nats.read import READ, read_bucket

logger = logging.getLogger(__name__)

#: The consumers of a watch (``watch_<name>_<hex>``): heartbeats and flow control, as
#: nats-py's ordered one.
WATCH = ConsumerSpec(prefix="watch", heartbeat=5.0, inactive_threshold=60.0)


class Watch:
    """A watch of ``bucket``'s keys matching ``key_filter`` (see the module docstring)."""

    def __init__(
        self,
        kv: KvStore,
        bucket: str,
        key_filter: str = ">",
        *,
        name: str,
        on_entry: Callable[[KvEntry], None] | None = None,
        on_batch: Callable[[tuple[KvEntry, ...]], None] | None = None,
        on_synced: Callable[[], None] | None = None,
        follow: bool = True,
        batch_limit: int = 10_000,
        read_timeout: float = 600.0,
        raw: bool = False,
        batch_delay: float = 0.0,
    ) -> None:
        """``raw``: its consumers take deliveries as bytes from the client's parser
        (:mod:`fleet.runtime.nats.raw`): for the bucket with the most traffic, heartbeats.
        ``batch_delay``: a batch is handed over that long after its first entry (0: at the
        next turn of the loop), so a steady stream crosses to the actors in fewer, larger
        batches (heartbeats: 10,000 a second at 100,000 devices)."""
        self._raw = raw
        self._batch_delay = batch_delay
        if (on_entry is None) == (on_batch is None):
            raise ValueError("a watch needs exactly one of on_entry and on_batch")
        self._kv = kv
        self._bucket = bucket
        self._filter = key_filter
        self._name = name
        self._on_entry = on_entry
        self._on_batch = on_batch
        self._on_synced = on_synced
        self._follow = follow
        self._batch_limit = batch_limit
        self._read_timeout = read_timeout
        self._last = 0
        self._synced = False
        self._target = 0
        self._restart = asyncio.Event()
        self._reason = ""
        self._task: asyncio.Task[None] | None = None
        self._remove_listener: Callable[[], None] | None = None
        self._pending: list[KvEntry] = []
        self._synced_pending = False
        self._flush_handle: asyncio.Handle | None = None

    @property
    def last_revision(self) -> int:
        return self._last

    @property
    def synced(self) -> bool:
        return self._synced

    def start(self) -> None:
        """Start on the running loop (call from a coroutine or loop callback)."""
        if self._follow:
            self._remove_listener = self._kv.transport.add_reconnect_listener(self._reconnected)
            self._task = create_guarded_task(self._run(), name=self._name)
        else:
            self._task = create_guarded_task(self._read(), name=self._name, finishable=True)

    async def stop(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    # -- following ------------------------------------------------------------------

    def _reconnected(self) -> None:
        self._resume("reconnected")

    def _resume(self, reason: str) -> None:
        self._reason = reason
        self._restart.set()

    async def _run(self) -> None:
        delay = 0.2
        stuck = 0.0  # pause before a new consumer when the last one broke without progress
        while True:
            await self._kv.transport.wait_connected(timeout=None)
            self._restart.clear()
            before = self._last
            try:
                consumer = await self._open()
            except FleetError as exc:  # logged and retried: a watch must not die
                logger.warning(
                    "watch %s: (re)subscribe failed: %s; retry in %.1fs", self._name, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            try:
                await self._restart.wait()
            finally:
                await consumer.close()
            logger.info(
                "watch %s: resuming after revision %d (%s)", self._name, self._last, self._reason
            )
            stuck = 0.0 if self._last > before else min(stuck * 2 or 0.05, 5.0)
            await asyncio.sleep(stuck)

    async def _open(self) -> PushConsumer:
        target = await self._kv.last_revision(self._bucket, self._filter)
        if target < self._last:
            logger.warning(
                "watch %s: stream is behind revision %d (store reset?); reading it all again",
                self._name,
                self._last,
            )
            self._last = 0
        if not self._synced:
            self._target = target
        spec = msgspec.structs.replace(WATCH, prefix=f"{WATCH.prefix}_{self._name}")
        consumer = PushConsumer(
            self._kv, bucket=self._bucket, key_filter=self._filter, spec=spec,
            after=self._last, on_entry=self._deliver, on_broken=self._resume, raw=self._raw,
        )  # fmt: skip
        await consumer.open()
        if not self._synced and target == 0:
            self._mark_synced()
        return consumer

    def _deliver(self, entry: KvEntry) -> None:
        if entry.revision <= self._last:
            return
        self._last = entry.revision
        self._hand_over(entry)
        if not self._synced and entry.revision >= self._target:
            self._mark_synced()

    # -- reading once ---------------------------------------------------------------

    async def _read(self) -> None:
        delay = 0.2
        while True:
            try:
                spec = msgspec.structs.replace(READ, prefix=f"{READ.prefix}_{self._name}")
                entries, _mark = await read_bucket(
                    self._kv, self._bucket, self._filter, timeout=self._read_timeout, spec=spec
                )
                break
            except FleetError as exc:
                logger.warning("%s: reading %s failed: %s; retry in %.1fs", self._name,
                               self._bucket, exc, delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        for entry in sorted(entries.values(), key=lambda e: e.revision):
            self._last = entry.revision
            self._hand_over(entry)
        self._mark_synced()

    # -- handing over ---------------------------------------------------------------

    def _hand_over(self, entry: KvEntry) -> None:
        if self._on_entry is not None:
            try:
                self._on_entry(entry)
            except Exception:
                logger.exception("watch %s: on_entry failed for %s", self._name, entry.key)
            return
        self._pending.append(entry)
        if len(self._pending) >= self._batch_limit:
            self._flush()
        elif self._flush_handle is None:
            loop = asyncio.get_running_loop()
            if self._batch_delay > 0 and self._synced:
                self._flush_handle = loop.call_later(self._batch_delay, self._flush)
            else:
                self._flush_handle = loop.call_soon(self._flush)

    def _mark_synced(self) -> None:
        self._synced = True
        if self._on_batch is not None and (self._pending or self._flush_handle is not None):
            self._synced_pending = True  # after the entries still waiting for their batch
            return
        self._call_synced()

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._pending:
            batch, self._pending = tuple(self._pending), []
            assert self._on_batch is not None
            try:
                self._on_batch(batch)
            except Exception:
                logger.exception("watch %s: on_batch failed", self._name)
        if self._synced_pending:
            self._synced_pending = False
            self._call_synced()

    def _call_synced(self) -> None:
        if self._on_synced is not None:
            try:
                self._on_synced()
            except Exception:
                logger.exception("watch %s: on_synced failed", self._name)
