"""The per-actor pieces of the pooled actor runtime: mailbox, stop flag, future.

Why it exists: :mod:`fleet.runtime.actorkit.pool` runs 10,000-100,000 actors on a few worker
threads. Each actor owns one :class:`Mailbox`, the unit the pool schedules: a message
``put`` into an idle mailbox queues the mailbox (once) on the pool's run queue, and only
the worker that took it from there may run that actor until it hands it back. That one
rule gives "messages in order" and "never one actor on two threads at once".

Per-actor memory is what limits the fleet, so these are lean on purpose: the message
deque exists only while messages wait, and :class:`StopFlag` replaces the ~1.2 KB
``threading.Event`` pykka gives each actor (measured with tracemalloc) by a flag that
builds its condition only if somebody ever waits on it.

What it must never do: hold a mailbox lock while running actor code or while touching
another mailbox, or let a message put after the actor finished wait forever (it is
refused with ``ActorDeadError`` instead).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from pykka import ActorDeadError, ThreadingFuture

from fleet.errors import PermanentError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from fleet.runtime.actorkit._pykka import Envelope

# Which pool (if any) the current thread works for; set by the pool's workers.
WORKER = threading.local()

_FLAG_LOCK = threading.Lock()  # guards StopFlag's lazily built condition (rarely taken)


class PoolDeadlockError(PermanentError, RuntimeError):
    """A pool worker tried to block on an actor of its own pool.

    Raised by ``get()`` on a future from ``ask()``/``stop()``/a proxy call to a pooled
    actor, when called on a worker thread of the same pool: if every worker did that, no
    worker would be left to answer. Use ``tell`` with a reply-to ref instead.
    """


class PoolScheduler(Protocol):
    """What a mailbox needs from its pool (implemented by ``ActorPool``)."""

    @property
    def name(self) -> str: ...

    def admit(self, box: Mailbox, /) -> None: ...

    def schedule(self, box: Mailbox, /) -> None: ...

    def wait_finished(self, boxes: Iterable[Mailbox], /, *, deadline: float) -> list[Mailbox]: ...


def on_worker_of(pool: object) -> bool:
    """Whether the current thread is one of ``pool``'s workers."""
    return getattr(WORKER, "pool", None) is pool


class StopFlag(threading.Event):
    """A ``threading.Event`` for ``actor_stopped`` that costs a few bytes until waited on."""

    def __init__(self) -> None:  # deliberately not Event.__init__: no Condition up front
        self._flag = False
        self._waiters: threading.Condition | None = None

    def is_set(self) -> bool:
        return self._flag

    isSet = is_set

    def set(self) -> None:
        with _FLAG_LOCK:
            self._flag = True
            waiters = self._waiters
        if waiters is not None:
            with waiters:
                waiters.notify_all()

    def clear(self) -> None:
        with _FLAG_LOCK:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            return True
        with _FLAG_LOCK:
            if self._waiters is None:
                self._waiters = threading.Condition(threading.Lock())
            waiters = self._waiters
        with waiters:
            return waiters.wait_for(lambda: self._flag, timeout)

    def _at_fork_reinit(self) -> None:
        self._waiters = None


class PooledFuture(ThreadingFuture[Any]):
    """pykka's ThreadingFuture that refuses to block a worker of the replying pool."""

    _pool: PoolScheduler | None = None  # the replying actor's pool, set by Mailbox.put
    _box: Mailbox | None = None  # the replying actor's mailbox, for the error message

    def get(self, *, timeout: float | None = None) -> Any:
        pool = self._pool
        if pool is not None and on_worker_of(pool):
            raise PoolDeadlockError(
                f"blocking get() on a reply from {self._box and self._box.name()} on worker "
                f"{threading.current_thread().name!r} of the same pool {pool.name!r} "
                "can deadlock the pool; tell a message with a reply-to ref instead"
            )
        return super().get(timeout=timeout)


class Countdown:
    """How many of the actors a ``wait_finished`` call waits for have not finished yet."""

    __slots__ = ("pending",)

    def __init__(self, pending: int) -> None:
        self.pending = pending


class Mailbox:
    """One actor's inbox (pykka's ``ActorInbox``) and its scheduling state."""

    __slots__ = (
        "_lock",
        "_queue",
        "actor",
        "closed",
        "finished",
        "label",
        "pool",
        "scheduled",
        "started",
        "watchers",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Envelope[Any]] | None = None
        self.pool: PoolScheduler | None = None  # bound by PooledActor.__init__
        self.actor: Any = None  # the PooledActor while it lives; None once finished
        self.scheduled = False  # on the run queue or being run by a worker
        self.started = False  # on_start has run
        self.closed = False  # stopped and drained: puts are refused
        self.finished = False  # closed, undelivered asks answered, gone from the pool
        self.label = ""  # the actor's name, kept for errors once ``actor`` is dropped
        self.watchers: list[Countdown] | None = None  # waits for this actor to finish

    def put(self, envelope: Envelope[Any], /) -> None:
        pool = self.pool
        assert pool is not None, "mailbox used before PooledActor.__init__ bound it"
        reply_to = envelope.reply_to
        if isinstance(reply_to, PooledFuture):
            reply_to._pool = pool
            reply_to._box = self
        with self._lock:
            accepted = not self.closed
            wake = False
            if accepted:
                if self._queue is None:
                    self._queue = deque()
                self._queue.append(envelope)
                wake = not self.scheduled
                self.scheduled = True
        if wake:
            pool.schedule(self)
        elif not accepted:
            dead = ActorDeadError(f"{self.name()} is stopped")
            if reply_to is None:
                raise dead
            reply_to.set_exception(exc_info=(ActorDeadError, dead, None))

    def name(self) -> str:
        """The actor's name, as pykka writes it: ``Class (urn)``."""
        return str(self.actor) if self.actor is not None else self.label

    def get(self) -> Envelope[Any]:
        """Next envelope (only ever called by the worker running this actor)."""
        queue = self._queue
        if not queue:
            raise IndexError("mailbox is empty")
        return queue.popleft()

    def empty(self) -> bool:
        return not self._queue

    def wake(self) -> None:
        """Put a new actor on the run queue for its first turn (on_start)."""
        assert self.pool is not None
        with self._lock:
            self.scheduled = True
        self.pool.schedule(self)

    def end_turn(self, *, stopped: bool) -> list[Envelope[Any]] | bool:
        """After a turn: the undelivered envelopes if stopped, else whether to run again."""
        with self._lock:
            if stopped:
                self.closed = True
                self.label = str(self.actor)
                self.scheduled = False
                left = list(self._queue or ())
                self._queue = None
                return left
            if self._queue:
                return True  # stays scheduled; the worker requeues it
            self._queue = None  # an idle actor keeps no deque (~770 bytes each)
            self.scheduled = False
            return False
