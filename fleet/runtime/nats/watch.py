"""Bucket watches that are complete at start and survive server restarts.

Why it exists: nats-py's ``kv.watch`` signals the end of the initial values with a
``None`` that was measured to arrive early (75 of 25,000 initial entries came after it),
and its ordered consumer is ephemeral: when nats-server restarts, the consumer is gone
and the watch silently stops. A :class:`Watch` fixes both:

* **Complete initial read.** Before subscribing, it asks the stream for the highest
  revision among the matching keys (a last-by-subject lookup, wildcards allowed). The
  initial values are complete once an entry at or past that revision was delivered;
  the consumer delivers the last value per key in stream order, so nothing before it is
  missing. Only then is ``on_synced`` called.
* **No loss across outages.** It remembers the last revision it delivered. After every
  reconnect it drops its consumer and makes a new one starting right after that
  revision. With one value kept per key, that replays exactly the keys that changed
  while it was away (deletes included, as delete markers). Revisions already delivered
  are skipped, so consumers see every revision once and in order.

What it must never do: block in ``on_entry`` (it runs on the loop: tell an actor),
or call ``on_synced`` before the initial values are all out.

Known limit: if the server's store is wiped (revisions restart from 1), a resumed watch
notices the stream's last sequence is below its mark and starts over with a full read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nats.js import JetStreamContext, api

from fleet.errors import BusUnavailable
from fleet.runtime.aiokit.tasks import create_guarded_task
from fleet.runtime.nats.errors import translate_errors
from fleet.runtime.nats.kv import KvEntry, operation_of, stream_sequence

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from fleet.runtime.nats.bus import Bus

logger = logging.getLogger(__name__)

CLEANUP_TIMEOUT = 1.0  # seconds a consumer clean-up may hold up a stop


async def _subscribe(
    js: JetStreamContext,
    *,
    bucket: str,
    key_filter: str,
    after: int,
    cb: Callable[[Msg], Any],
    inactive_threshold: float = 60.0,
) -> JetStreamContext.PushSubscription:
    """An ordered push consumer: last value per key, or everything after ``after``."""
    if after == 0:
        policy, start = api.DeliverPolicy.LAST_PER_SUBJECT, None
    else:
        policy, start = api.DeliverPolicy.BY_START_SEQUENCE, after + 1
    config = api.ConsumerConfig(deliver_policy=policy, opt_start_seq=start)
    return await js.subscribe(
        f"$KV.{bucket}.{key_filter}",
        stream=f"KV_{bucket}",
        cb=cb,
        ordered_consumer=True,
        config=config,
        inactive_threshold=inactive_threshold,
    )


def _entry(bucket: str, msg: Msg) -> KvEntry:
    prefix = f"$KV.{bucket}."
    return KvEntry(
        bucket=bucket,
        key=msg.subject[len(prefix) :],
        value=msg.data or b"",
        revision=stream_sequence(msg.reply),
        operation=operation_of(msg.headers),
    )


async def read_snapshot(
    bus: Bus, bucket: str, key_filter: str, *, timeout: float
) -> dict[str, KvEntry]:
    """Every live entry matching ``key_filter``, complete as of the call."""
    target = await bus.last_revision(bucket, key_filter)
    entries: dict[str, KvEntry] = {}
    if target == 0:
        return entries
    done = asyncio.Event()

    async def on_msg(msg: Msg) -> None:
        entry = _entry(bucket, msg)
        if entry.deleted:
            entries.pop(entry.key, None)
        else:
            entries[entry.key] = entry
        if entry.revision >= target:
            done.set()

    async with translate_errors(f"snapshot of {bucket}/{key_filter}"):
        sub = await _subscribe(
            bus.js,
            bucket=bucket,
            key_filter=key_filter,
            after=0,
            cb=on_msg,
            inactive_threshold=5.0,
        )
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError as exc:
        raise BusUnavailable(
            f"snapshot of {bucket}/{key_filter} incomplete after {timeout}s "
            f"({len(entries)} entries, waiting for revision {target})"
        ) from exc
    finally:
        await _drop(bus.js, bucket, sub)
    return entries


async def _drop(js: JetStreamContext, bucket: str, sub: JetStreamContext.PushSubscription) -> None:
    """Unsubscribe and delete the consumer now (best effort).

    Unsubscribing alone leaves an ephemeral consumer on the server until its inactive
    threshold passes; a fleet reconnecting at once would pile up consumers against the
    stream's cap (1,000 by default). Each step is bounded: this runs on stop and
    cancellation too, when NATS may be away.
    """
    try:
        name = (await asyncio.wait_for(sub.consumer_info(), CLEANUP_TIMEOUT)).name
    except Exception:  # gone already, or NATS away: the inactive threshold removes it
        name = None
    with contextlib.suppress(Exception):
        await sub.unsubscribe()
    if name:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(js.delete_consumer(f"KV_{bucket}", name), CLEANUP_TIMEOUT)


class Watch:
    """A long-lived watch of one bucket's keys matching a filter."""

    def __init__(
        self,
        bus: Bus,
        bucket: str,
        key_filter: str,
        *,
        name: str,
        on_entry: Callable[[KvEntry], None],
        on_synced: Callable[[], None] | None = None,
    ) -> None:
        self._bus = bus
        self._bucket = bucket
        self._filter = key_filter
        self._name = name
        self._on_entry = on_entry
        self._on_synced = on_synced
        self._last = 0
        self._synced = False
        self._target = 0
        self._restart = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._remove_listener: Callable[[], None] | None = None

    @property
    def last_revision(self) -> int:
        return self._last

    @property
    def synced(self) -> bool:
        return self._synced

    def start(self) -> None:
        """Start on the running loop (call from a coroutine or loop callback)."""
        self._remove_listener = self._bus.add_reconnect_listener(self._restart.set)
        self._task = create_guarded_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = 0.2
        while True:
            await self._bus.wait_connected(timeout=None)
            self._restart.clear()
            try:
                sub = await self._open()
            except Exception as exc:  # logged and retried: a watch must not die
                logger.warning(
                    "watch %s: (re)subscribe failed: %r; retry in %.1fs", self._name, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            try:
                await self._restart.wait()
                logger.info("watch %s: resuming after revision %d", self._name, self._last)
            finally:
                await _drop(self._bus.js, self._bucket, sub)

    async def _open(self) -> JetStreamContext.PushSubscription:
        target = await self._bus.last_revision(self._bucket, self._filter)
        if target < self._last:
            logger.warning(
                "watch %s: stream is behind revision %d (store reset?); reading it all again",
                self._name,
                self._last,
            )
            self._last = 0
        if not self._synced:
            self._target = target
        sub = await _subscribe(
            self._bus.js,
            bucket=self._bucket,
            key_filter=self._filter,
            after=self._last,
            cb=self._deliver,
        )
        if not self._synced and target == 0:
            self._mark_synced()
        return sub

    async def _deliver(self, msg: Msg) -> None:
        entry = _entry(self._bucket, msg)
        if entry.revision <= self._last:
            return
        self._last = entry.revision
        try:
            self._on_entry(entry)
        except Exception:
            logger.exception("watch %s: on_entry failed for %s", self._name, entry.key)
        if not self._synced and entry.revision >= self._target:
            self._mark_synced()

    def _mark_synced(self) -> None:
        self._synced = True
        if self._on_synced is not None:
            try:
                self._on_synced()
            except Exception:
                logger.exception("watch %s: on_synced failed", self._name)
