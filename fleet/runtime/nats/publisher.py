"""Latest-value publishing to KV that survives outages: what a device reports.

Why it exists: the agent reports phases, its info and heartbeats from actor threads,
and must keep working while NATS is away. For reported state only the latest value
per key matters, so :class:`LatestValuePublisher` keeps one pending value per key,
writes it when it can, and after every reconnect writes every key's latest value
again ("re-reports current phases"), so the operator catches up on whatever happened
offline. Heartbeats are not replayed: a beat from the past says nothing.

What it must never do: block the calling thread (``publish`` only schedules), or write
an older value over a newer one for the same key.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from fleet.errors import FleetError
from fleet.runtime.aiokit.tasks import cancel_and_wait, create_guarded_task

if TYPE_CHECKING:
    from fleet.runtime.aiokit.loop import EventLoopThread
    from fleet.runtime.nats.kvstore import KvStore

logger = logging.getLogger(__name__)


class PublisherPort(Protocol):
    """What actors see: publish ``value`` at ``bucket``/``key`` (latest wins)."""

    def publish(self, bucket: str, key: str, value: bytes, *, replay: bool = True) -> None: ...


class LatestValuePublisher:
    """Writes the latest value per key; rewrites replayable keys after each reconnect."""

    def __init__(
        self,
        *,
        loop_thread: EventLoopThread,
        kv: KvStore,
        retry_delay: float = 1.0,
    ) -> None:
        self._kv = kv
        self._transport = kv.transport
        self._loop_thread = loop_thread
        self._retry_delay = retry_delay
        self._latest: dict[tuple[str, str], bytes] = {}  # replayable keys' latest values
        self._dirty: dict[tuple[str, str], bytes] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._remove_listener: object = None
        self.written = 0

    def publish(self, bucket: str, key: str, value: bytes, *, replay: bool = True) -> None:
        """Thread-safe; returns at once. ``replay=False``: drop it if NATS is away."""
        self._loop_thread.loop.call_soon_threadsafe(self._offer, (bucket, key), value, replay)

    def _offer(self, where: tuple[str, str], value: bytes, replay: bool) -> None:
        if replay:
            self._latest[where] = value
        elif not self._transport.connected:
            return
        self._dirty[where] = value
        self._wake.set()

    def start(self) -> None:
        """Start on the running loop (from a coroutine on it)."""
        self._transport.add_reconnect_listener(self._replay)
        self._task = create_guarded_task(self._run(), name="publisher")

    async def stop(self, *, timeout: float = 2.0) -> None:
        """Try to write what is pending (bounded), then stop."""
        if self._dirty and self._transport.connected:
            try:
                await asyncio.wait_for(self._flush(), timeout)
            except (TimeoutError, FleetError):
                logger.info("publisher stopped with %d values unwritten", len(self._dirty))
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    def _replay(self) -> None:
        self._dirty.update(self._latest)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._transport.wait_connected(timeout=None)
            try:
                await self._flush()
            except FleetError as exc:
                logger.info(
                    "publisher: write failed (%s); retrying in %.1fs", exc, self._retry_delay
                )
                await asyncio.sleep(self._retry_delay)
                self._wake.set()

    async def _flush(self) -> None:
        while self._dirty:
            where, value = next(iter(self._dirty.items()))
            await self._kv.put(where[0], where[1], value)
            self.written += 1
            if self._dirty.get(where) is value:  # not replaced while we wrote it
                del self._dirty[where]
