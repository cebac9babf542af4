"""ActorPool: a few worker threads that run many :class:`PooledActor` s.

Why it exists: the operator holds one actor per device, 10,000 to 100,000 of them. One
``pykka.ThreadingActor`` each means one OS thread each (~22 KB of RSS per actor, seconds
to start 10,000, tell throughput in the hundreds to thousands of msg/s). A pool runs
them all on ``workers`` threads; ``docs/benchmarks.md`` ("Actors") has the figures.
Under CPython's GIL more workers do not add throughput; they keep one slow handler from
holding up every other actor.

How it schedules: a run queue (FIFO) of mailboxes that have work. A worker takes one,
runs that actor's turn -- ``on_start`` on the first turn, then at most ``batch``
messages -- and puts it back at the end of the queue if messages are still waiting. So
an actor's messages run in order, never on two threads at once, and an actor flooded
with messages cannot starve the others.

Hazard (deadlock): a handler that blocks waiting for a reply from another actor of the
same pool holds a worker; when every worker does that, nothing runs. ``get()`` on such
a future raises :class:`PoolDeadlockError` on a worker of that pool. Talk between
pooled actors with ``tell`` and a reply-to ref. Blocking on a ``ThreadingActor`` or on
another pool is not detected: keep such asks downward, never in a cycle.

What it must never do: run actor code while holding a lock of its own, let a worker
thread die of an actor's exception, or stop actors one blocking ``ask`` at a time.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from pykka import ActorDeadError

from fleet.runtime.actorkit._pykka import ActorStop
from fleet.runtime.actorkit.index import ActorIndex
from fleet.runtime.actorkit.mailbox import (
    WORKER,
    Countdown,
    Mailbox,
    PoolDeadlockError,
    on_worker_of,
)
from fleet.runtime.actorkit.pooled import PooledActor

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pykka import ActorRef

__all__ = ["ActorIndex", "ActorPool", "PoolDeadlockError", "PooledActor", "live_pools"]

logger = logging.getLogger(__name__)

_POOLS: weakref.WeakSet[ActorPool] = weakref.WeakSet()
_POOLS_LOCK = threading.Lock()


def live_pools() -> list[ActorPool]:
    """Pools not (cleanly) shut down yet: a leak check looks at their ``live_actors()``."""
    with _POOLS_LOCK:
        return list(_POOLS)


class ActorPool:
    """``workers`` threads running :class:`PooledActor` s, ``batch`` messages per turn."""

    def __init__(self, *, workers: int = 4, name: str = "fleet-pool", batch: int = 32) -> None:
        if workers < 1:
            raise ValueError(f"actor pool {name!r}: workers must be >= 1, got {workers}")
        if batch < 1:
            raise ValueError(f"actor pool {name!r}: batch must be >= 1, got {batch}")
        self._name = name
        self._batch = batch
        self._runq: queue.SimpleQueue[Mailbox | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._finished = threading.Condition(self._lock)  # notified as actors finish
        self._live: set[Mailbox] = set()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}") for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()
        with _POOLS_LOCK:
            _POOLS.add(self)

    def __repr__(self) -> str:
        return f"<ActorPool {self._name!r} workers={len(self._threads)} live={self.live_count}>"

    @property
    def name(self) -> str:
        return self._name

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def live_count(self) -> int:
        """How many actors are alive (started and not yet finished stopping)."""
        return len(self._live)

    @property
    def runnable(self) -> int:
        """How many actors have messages waiting for a worker (approximate, never blocks):
        a backlog that grows is a pool behind its mail (``/metrics``)."""
        return self._runq.qsize()

    def live_actors(self) -> list[ActorRef[Any]]:
        with self._lock:
            boxes = list(self._live)
        return [actor.actor_ref for box in boxes if (actor := box.actor) is not None]

    def shutdown(self, *, timeout: float = 10.0) -> list[ActorRef[Any]]:
        """Stop every actor (each runs ``on_stop``), then the workers.

        Returns the actors that did not stop within ``timeout`` (also logged). Starting
        an actor on a pool that is shut down raises ``RuntimeError``.
        """
        self._refuse_on_own_worker("shut down the pool")
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
            boxes = list(self._live)
        for box in boxes:
            tell_stop(box)
        left = [a.actor_ref for b in self.wait_finished(boxes, deadline=deadline) if (a := b.actor)]
        for _ in self._threads:
            self._runq.put(None)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [thread.name for thread in self._threads if thread.is_alive()]
        if left or stuck:
            logger.error(
                "actor pool %s: %d actors did not stop in %.1fs (%s); workers still running: %s",
                self._name, len(left), timeout, ", ".join(map(str, left[:5])), stuck,
            )  # fmt: skip
        else:
            with _POOLS_LOCK:
                _POOLS.discard(self)
        return left

    def wait_finished(self, boxes: Iterable[Mailbox], /, *, deadline: float) -> list[Mailbox]:
        """Wait (until ``deadline``, monotonic) for these actors to finish; return the rest.

        The waiter wakes once, when the last of them finishes, not once per actor.
        """
        self._refuse_on_own_worker("wait for its actors to stop")
        with self._finished:
            pending = [box for box in boxes if not box.finished]
            countdown = Countdown(len(pending))
            for box in pending:
                if box.watchers is None:
                    box.watchers = []
                box.watchers.append(countdown)
            try:
                self._finished.wait_for(
                    lambda: countdown.pending == 0, max(0.0, deadline - time.monotonic())
                )
            finally:
                left = [box for box in pending if not box.finished]
                for box in left:
                    if box.watchers is not None:
                        box.watchers.remove(countdown)
        return left

    # Called by PooledActor and Mailbox.

    def admit(self, box: Mailbox, /) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(
                    f"actor pool {self._name!r} is shut down: cannot start {box.actor}"
                )
            self._live.add(box)
        box.wake()

    def schedule(self, box: Mailbox, /) -> None:
        self._runq.put(box)

    # The workers.

    def _refuse_on_own_worker(self, what: str) -> None:
        if on_worker_of(self):
            raise PoolDeadlockError(
                f"worker {threading.current_thread().name!r} cannot {what} {self._name!r}: "
                "it would wait on itself"
            )

    def _work(self) -> None:
        WORKER.pool = self
        runq = self._runq
        while (box := runq.get()) is not None:
            try:
                self._turn(box)
            except BaseException:  # a bug here must not kill the worker (and the pool)
                logger.exception("actor pool %s: turn of %s failed", self._name, box.actor)

    def _turn(self, box: Mailbox) -> None:
        actor: PooledActor = box.actor
        stopped = actor.actor_stopped
        if not box.started:
            box.started = True
            actor._pool_setup()
        for _ in range(self._batch):
            if stopped.is_set() or box.empty():
                break
            actor._pool_handle(box.get())
        outcome = box.end_turn(stopped=stopped.is_set())
        if outcome is True:
            self._runq.put(box)  # more waiting: back of the queue, so others get a turn
        elif outcome is not False:
            actor._pool_teardown(outcome)
            box.actor = None
            with self._finished:
                box.finished = True
                self._live.discard(box)
                if box.watchers:
                    self._count_down(box.watchers)
                box.watchers = None

    def _count_down(self, watchers: list[Countdown]) -> None:
        done = False
        for countdown in watchers:
            countdown.pending -= 1
            done = done or countdown.pending == 0
        if done:
            self._finished.notify_all()


def tell_stop(box: Mailbox) -> None:
    """Ask a pooled actor to stop after the messages already queued (no future)."""
    actor = box.actor
    if actor is not None:
        with contextlib.suppress(ActorDeadError):  # already stopping: waiting is enough
            actor.actor_ref.tell(ActorStop())
