"""Many KV writes from an actor's thread, with bounded concurrency and results in order.

Why it exists: the operator writes one desired-state entry per (device, deployment),
10,000-100,000 at a time, and deletes the keys of devices it forgot. One coroutine per
write submitted from an actor would be 100,000 futures; here a batch of writes is one
coroutine on the loop (:mod:`fleet.runtime.nats.kv_publish`: at most ``in_flight``
writes unacknowledged), and its results come back as one future.

The operator's other writes are few and rare: the keys of devices silent for longer
than the retention, each deleted only if unchanged (:meth:`KvBatchWriter.delete_unchanged`).

Each batch of puts or deletes is measured once, when it ends (``observe``: its operation,
the keys written and not, its duration): the operator's metrics, at no cost per key.

What it must never do: block the loop, or reorder the results of a batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable, Callable, Sequence

from fleet.errors import FleetError, RevisionMismatch
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.kv_publish import KvPublisher, WriteResult
from fleet.runtime.nats.kvstore import KvStore

__all__ = ["KvBatchWriter", "ObserveBatch", "WriteResult"]

ObserveBatch = Callable[[str, int, int, float], None]
"""(op: put or delete, keys written, keys not, seconds), called on the loop."""


class KvBatchWriter:
    """Puts and deletes in batches; results come back in the order of the items.

    Writes go through one :class:`~fleet.runtime.nats.kv_publish.KvPublisher` (a window of
    ``in_flight`` unacknowledged writes shared by every batch). :meth:`close` (from a
    non-loop thread) releases its inbox subscription.
    """

    def __init__(
        self, *, loop_thread: EventLoopThread, kv: KvStore, in_flight: int = 256, groups: int = 64,
        observe: ObserveBatch | None = None,
    ) -> None:  # fmt: skip
        self._observe = observe
        self._kv = kv
        self._loop_thread = loop_thread
        self._publisher = KvPublisher(kv, in_flight=in_flight)
        self._groups = groups

    def put_many(
        self, bucket: str, items: Sequence[tuple[str, bytes]]
    ) -> concurrent.futures.Future[list[WriteResult]]:
        return self._loop_thread.submit(
            self._measured("put", len(items), self._publisher.write_many(bucket, items))
        )

    def delete_many(
        self, bucket: str, keys: Sequence[str], *, last: Sequence[int] | None = None
    ) -> concurrent.futures.Future[list[WriteResult]]:
        """Delete each key; a result is the delete marker's revision, or the error.

        ``last``: each key's expected revision: a key no longer at it is left as it is
        and its result is a ``RevisionMismatch`` (a compare-and-swap per key).
        """
        items = [(k, None) for k in keys]
        return self._loop_thread.submit(
            self._measured(
                "delete", len(items), self._publisher.write_many(bucket, items, last=last)
            )
        )

    async def _measured(
        self, op: str, count: int, writes: Awaitable[list[WriteResult]]
    ) -> list[WriteResult]:
        observe = self._observe
        if observe is None:
            return await writes
        start = time.monotonic()
        try:
            results = await writes
        except Exception:
            observe(op, 0, count, time.monotonic() - start)
            raise
        failed = sum(1 for r in results if isinstance(r, BaseException))
        observe(op, len(results) - failed, failed, time.monotonic() - start)
        return results

    def delete_unchanged(
        self, groups: Sequence[Sequence[tuple[str, str, int]]]
    ) -> concurrent.futures.Future[list[str]]:
        """Delete each group's ``(bucket, key, revision)`` in order, each only if still at
        that revision; a group stops at its first changed key. One result per group:
        ``"deleted"``, ``"changed"`` or ``"failed: <why>"``; at most ``groups`` at a time.
        """
        kv = self._kv

        async def one(items: Sequence[tuple[str, str, int]]) -> str:
            for bucket, key, revision in items:
                try:
                    await kv.delete(bucket, key, last=revision)
                except RevisionMismatch:
                    return "changed"
                except FleetError as exc:
                    return f"failed: {exc}"
            return "deleted"

        async def run() -> list[str]:
            # A few workers over the groups, not a task per group: a sweep may hand over
            # 10,000 devices, and 10,000 pending tasks were most of its memory.
            results = [""] * len(groups)
            todo = iter(enumerate(groups))

            async def worker() -> None:
                for i, items in todo:
                    results[i] = await one(items)

            await asyncio.gather(*(worker() for _ in range(min(self._groups, len(groups)))))
            return results

        return self._loop_thread.submit(run())

    def get_many(
        self, bucket: str, keys: Sequence[str]
    ) -> concurrent.futures.Future[list[KvEntry | BaseException | None]]:
        """Each key's live entry (None: absent or deleted), or the error reading it."""

        async def run() -> list[KvEntry | BaseException | None]:
            return await asyncio.gather(
                *(self._kv.get(bucket, k) for k in keys), return_exceptions=True
            )

        return self._loop_thread.submit(run())

    def close(self, *, timeout: float = 5.0) -> None:
        self._loop_thread.run(self._publisher.close(), timeout=timeout)
