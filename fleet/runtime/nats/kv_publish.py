"""KV puts and deletes published in a window, their acks gathered on one subscription.

Why it exists: the operator writes 30,000-300,000 desired-state entries in a burst.
As one request each, a write is a task, a future, a timer, a token and a JSON parse;
that per-write overhead was most of the operator's CPU. Here a batch is one coroutine:
it publishes each write to the bucket's subject (``$KV.<bucket>.<key>``; a delete
carries ``KV-Operation: DEL``, a compare-and-swap ``Nats-Expected-Last-Subject-Sequence``,
as nats-py's ``kv.delete``/``kv.update`` send them) with a reply subject
``<inbox>.<n>``, keeps at most ``in_flight`` unacknowledged, and one inbox subscription
matches each ack to its write by ``n``. Measured: about 4x fewer CPU-seconds per put
than one request each (docs/benchmarks.md).

What it must never do: leave a write without a result. An ack that does not come within
``timeout`` of its publish fails that write with ``BusUnavailable`` (its ack, if it comes
later, is ignored: the caller retries, and a KV put is idempotent in content). A lost
compare-and-swap is a ``RevisionMismatch``. It runs on its transport's loop only.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from fleet.errors import BusError, BusUnavailable, FleetError
from fleet.runtime.aiokit.tasks import cancel_and_wait, create_guarded_task
from fleet.runtime.nats import jsapi, subjects
from fleet.runtime.nats.kvstore import KvStore
from fleet.runtime.nats.transport import Message, Subscription

if TYPE_CHECKING:
    from fleet.runtime.nats.bus import Bus

WriteResult = int | BaseException
"""A write's new revision (stream sequence), or the error it failed with."""

_DELETE: Mapping[str, str] = {subjects.KV_OPERATION: subjects.KV_DELETE}


class _Batch:
    __slots__ = ("done", "remaining", "results")

    def __init__(self, size: int) -> None:
        self.results: list[WriteResult | None] = [None] * size
        self.remaining = size
        self.done = asyncio.Event()
        if size == 0:
            self.done.set()

    def settle(self, index: int, result: WriteResult) -> None:
        if self.results[index] is None:
            self.results[index] = result
            self.remaining -= 1
            if self.remaining == 0:
                self.done.set()


# batch, index, subject, value, headers
_Write = tuple[_Batch, int, str, bytes, Mapping[str, str] | None]


class KvPublisher:
    """Windowed KV writes on a transport (create and use on its loop).

    Every batch queues its writes; one pump task publishes them while fewer than
    ``in_flight`` wait for their acks, and an ack wakes only the pump (a window shared by
    hundreds of batches must not wake hundreds of waiters per ack). A timer armed while
    writes wait fails those older than ``timeout`` (the store's request timeout).
    """

    def __init__(
        self, kv: KvStore | Bus, *, in_flight: int = 256, timeout: float | None = None
    ) -> None:
        store = kv if isinstance(kv, KvStore) else kv.kv  # a Bus: until its callers move
        self._transport = store.transport
        self._in_flight = in_flight
        self._timeout = timeout if timeout is not None else store.timeout
        self._prefix = ""
        self._sub: Subscription | None = None
        self._subscribing = asyncio.Lock()
        self._next = 0
        self._queue: deque[_Write] = deque()
        # token -> (batch, index, subject, published at): every write waiting for its ack
        self._waiting: dict[int, tuple[_Batch, int, str, float]] = {}
        self._room = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None

    async def _inbox(self) -> str:
        async with self._subscribing:  # two first batches at once make one subscription
            if self._sub is None:
                self._prefix = self._transport.new_inbox() + "."
                self._sub = await self._transport.subscribe(self._prefix + "*", self._on_ack)
        return self._prefix

    async def close(self) -> None:
        """Stop publishing; every write not yet acknowledged fails."""
        if self._pump_task is not None:
            await cancel_and_wait(self._pump_task)
            self._pump_task = None
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await sub.unsubscribe()
        while self._queue:
            batch, index, subject, _value, _headers = self._queue.popleft()
            batch.settle(index, BusUnavailable(f"write {subject}: publisher closed"))
        self._expire(now=float("inf"))
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    async def write_many(
        self,
        bucket: str,
        items: Sequence[tuple[str, bytes | None]],
        *,
        last: Sequence[int | None] | None = None,
    ) -> list[WriteResult]:
        """Put each ``(key, value)``; ``value=None`` deletes. Results in item order.

        ``last``: per item, the revision the key must still be at (a compare-and-swap;
        None: unconditional). A lost one is a ``RevisionMismatch``.
        """
        if last is not None and len(last) != len(items):
            raise ValueError(f"{len(items)} items but {len(last)} revisions")
        batch = _Batch(len(items))
        try:
            await self._inbox()
        except FleetError as exc:  # every item gets the reason
            return [_named(exc, f"writes to {bucket}")] * len(items)
        try:
            prefix = subjects.kv_prefix(bucket)
        except BusError as exc:
            return [BusError(f"writes to {bucket}: {exc}")] * len(items)
        queue = self._queue
        valid_key = subjects.valid_key
        for index, (key, value) in enumerate(items):
            if not valid_key(key):
                batch.settle(index, BusError(f"write {bucket}/{key!r}: not a valid key"))
                continue
            subject = prefix + key
            headers = _DELETE if value is None else None
            if last is not None and last[index]:
                expected = {subjects.EXPECTED_LAST_SUBJECT_SEQUENCE: str(last[index])}
                headers = expected if headers is None else {**headers, **expected}
            queue.append((batch, index, subject, value or b"", headers))
        if self._queue and self._pump_task is None:
            self._pump_task = create_guarded_task(
                self._pump(), name="kv-publisher-pump", finishable=True
            )
        await batch.done.wait()
        return [r if r is not None else BusError("no result") for r in batch.results]

    async def _pump(self) -> None:
        try:
            publish = self._transport.publish
            while self._queue:
                if len(self._waiting) >= self._in_flight:
                    self._room.clear()
                    await self._room.wait()
                    continue
                batch, index, subject, value, headers = self._queue.popleft()
                token = self._next
                self._next += 1
                self._waiting[token] = (batch, index, subject, time.monotonic())
                self._arm_expiry()
                try:
                    await publish(subject, value, reply=f"{self._prefix}{token}", headers=headers)
                except FleetError as exc:  # this item fails, the others go on
                    self._waiting.pop(token, None)
                    batch.settle(index, _named(exc, f"write {subject}"))
        finally:
            self._pump_task = None

    def _arm_expiry(self) -> None:
        if self._expiry is None:
            self._expiry = asyncio.get_running_loop().call_later(self._timeout / 4, self._on_expiry)

    def _on_expiry(self) -> None:
        self._expiry = None
        self._expire(now=time.monotonic())
        if self._waiting:
            self._arm_expiry()

    def _expire(self, *, now: float) -> None:
        late = [t for t, (_b, _i, _s, at) in self._waiting.items() if now - at >= self._timeout]
        for token in late:
            batch, index, subject, _at = self._waiting.pop(token)
            batch.settle(
                index,
                BusUnavailable(f"write {subject}: no acknowledgement within {self._timeout}s"),
            )
        if late:
            self._room.set()

    def _on_ack(self, msg: Message) -> None:
        token = msg.subject[len(self._prefix) :]
        if not token.isdecimal():
            return  # not one of ours
        waiting = self._waiting.pop(int(token), None)
        if waiting is None:
            return  # expired already
        batch, index, subject, _at = waiting
        self._room.set()
        revision = jsapi.acked_revision(msg.data)
        if revision:
            batch.settle(index, revision)
            return
        try:
            batch.settle(index, jsapi.acknowledged(f"write {subject}", msg))
        except FleetError as exc:
            batch.settle(index, exc)


def _named(exc: FleetError, what: str) -> FleetError:
    if isinstance(exc, BusUnavailable):
        return BusUnavailable(f"{what}: {exc}")
    return BusError(f"{what}: {exc}")
