"""Many coarse timers on one heap: the device actors' liveness checks.

Why it exists: 100,000 online devices each keep one liveness check pending
(:mod:`.liveness`). As event-loop timers (:class:`~fleet.runtime.aiokit.timers.LoopTimers`)
they would cost a few hundred bytes and a thread hop to the loop each, on the thread that
does all the NATS I/O. :class:`CoarseTimers` is a :class:`~fleet.runtime.aiokit.timers.TimerPort`
that keeps them on one heap (a tuple each) and tells the due ones when its
owner calls :meth:`fire` (the fleet index, once per tick: a check is late by at most a
tick, as the fleet-wide sweep it replaces was).

Thread-safe without a lock (a contended one costs a GIL handover): device actors arm
timers from the pool's workers through a ``queue.SimpleQueue``; only the firing thread
moves them onto the heap. What it must never do: raise when the target actor is gone
(the message is dropped).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import time
from collections.abc import Callable
from typing import Any

import pykka

logger = logging.getLogger(__name__)


class _Cancel:
    __slots__ = ("_seq", "_timers")

    def __init__(self, timers: CoarseTimers, seq: int) -> None:
        self._timers = timers
        self._seq = seq

    def cancel(self) -> None:
        self._timers._cancelled.add(self._seq)


class CoarseTimers:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        # (due, seq, ref, message): a plain tuple each, on the heap while pending.
        self._armed: queue.SimpleQueue[tuple[float, int, Any, object]] = queue.SimpleQueue()
        self._heap: list[tuple[float, int, Any, object]] = []  # the firing thread's alone
        self._seq = itertools.count()
        self._cancelled: set[int] = set()  # rare: the device actors never cancel

    def __len__(self) -> int:
        """Timers pending (cancelled ones included until they come due)."""
        return len(self._heap) + self._armed.qsize()

    def tell_later(self, ref: pykka.ActorRef[Any], message: object, *, delay: float) -> _Cancel:
        seq = next(self._seq)  # atomic under the GIL (itertools.count is implemented in C)
        self._armed.put((self._clock() + delay, seq, ref, message))
        return _Cancel(self, seq)

    def fire(self, *, now: float | None = None) -> int:
        """Tell every timer due by ``now``; how many were told. One thread only."""
        now = self._clock() if now is None else now
        heap, armed = self._heap, self._armed
        while not armed.empty():
            heapq.heappush(heap, armed.get_nowait())
        due: list[tuple[float, int, Any, object]] = []
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap))
        told = 0
        cancelled = self._cancelled
        for _at, seq, ref, message in due:
            if cancelled and seq in cancelled:
                cancelled.discard(seq)
                continue
            try:
                ref.tell(message)
                told += 1
            except pykka.ActorDeadError:
                logger.debug("timer message to dead actor %s dropped", ref)
        return told
