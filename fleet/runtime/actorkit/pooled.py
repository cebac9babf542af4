"""PooledActor: a pykka actor that borrows a thread from an ActorPool per turn.

Why it exists: one ``pykka.ThreadingActor`` per device costs an OS thread each; the
operator holds one actor per device (10,000-100,000). A :class:`PooledActor` keeps
pykka's whole programming model (``start``/``tell``/``ask``/``proxy``/``stop``,
``on_start``/``on_receive``/``on_stop``/``on_failure``, exceptions delivered to ``ask``
callers, a failing actor stopping alone) but runs on the shared workers of a
:class:`fleet.runtime.actorkit.pool.ActorPool`, through pykka's extension points
``_create_actor_inbox``, ``_create_future`` and ``_start_actor_loop``.

Differences from ``ThreadingActor`` (on purpose):

* Pooled actors are not put in ``pykka.ActorRegistry`` (a list: O(n) unregister,
  O(n^2) ``stop_all``). ``ActorPool.live_actors()`` lists them; keep per-entity refs in
  a :class:`fleet.runtime.actorkit.index.ActorIndex`.
* A ``BaseException`` escaping a handler stops this actor only (pykka would stop every
  registered actor, blocking a pool worker while it does).
* Blocking on a reply from an actor of the same pool, on one of that pool's workers,
  raises :class:`fleet.runtime.actorkit.mailbox.PoolDeadlockError` instead of risking a deadlock.

What it must never do: run on a thread other than the pool worker holding its turn, or
leave an ``ask`` caller waiting on a message it will never handle.
"""

from __future__ import annotations

import logging
import os
import random
import sys
from typing import TYPE_CHECKING, Any, Self

import pykka
from pykka import ActorDeadError, ActorRef

from fleet.runtime.actorkit._pykka import ActorStop
from fleet.runtime.actorkit.failfast import actor_died
from fleet.runtime.actorkit.mailbox import Mailbox, PooledFuture, PoolScheduler, StopFlag

if TYPE_CHECKING:
    from types import TracebackType

    from fleet.runtime.actorkit._pykka import Envelope


logger = logging.getLogger(__name__)

# uuid4() reads os.urandom each time (measured: ~40% of starting an actor here). URNs
# only need to be unique, not secret: draw them from a private generator, reseeded in a
# forked child so parent and child never share a sequence.
_URN_RANDOM = random.Random()
os.register_at_fork(after_in_child=_URN_RANDOM.seed)
_VERSION_4 = (0xFFFFFFFF_FFFF_0FFF_3FFF_FFFFFFFFFFFF, 0x00000000_0000_4000_8000_000000000000)


def new_urn() -> str:
    """A random (version 4) UUID URN, as ``uuid.uuid4().urn`` makes."""
    mask, bits = _VERSION_4
    h = f"{_URN_RANDOM.getrandbits(128) & mask | bits:032x}"
    return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class PooledActor(pykka.Actor):
    """A pykka actor run by an :class:`~fleet.runtime.actorkit.pool.ActorPool`.

    Subclass it like ``pykka.ThreadingActor``; accept ``pool`` and pass it on::

        class DeviceActor(PooledActor):
            def __init__(self, *, pool: ActorPool, device_id: str) -> None:
                super().__init__(pool=pool)
                self.device_id = device_id

        ref = DeviceActor.start(pool=pool, device_id="d1")

    Hazard: inside a handler, never wait on an ``ask()`` to an actor of the same pool
    (it raises ``PoolDeadlockError``); tell it a message carrying ``self.actor_ref``
    and handle the answer as another message.
    """

    actor_inbox: Mailbox

    def __init__(self, *, pool: PoolScheduler) -> None:
        # Not pykka.Actor.__init__: it builds a threading.Event (~1.2 KB per actor) that
        # we would replace at once. These four fields are all it sets (pykka 4.x).
        self.actor_urn = new_urn()
        box = self._create_actor_inbox()
        box.pool = pool
        box.actor = self
        self.actor_inbox = box
        self.actor_stopped = StopFlag()
        self._actor_ref = ActorRef(self)

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> ActorRef[Self]:
        """Create the actor and give it to its pool (``on_start`` runs there first)."""
        obj = cls(*args, **kwargs)
        if not isinstance(getattr(obj, "actor_inbox", None), Mailbox):
            raise TypeError(f"{cls.__name__}.__init__ must call super().__init__(pool=pool)")
        logger.debug("Starting %s", obj)
        obj._start_actor_loop()
        return obj.actor_ref

    @staticmethod
    def _create_actor_inbox() -> Mailbox:
        return Mailbox()

    @staticmethod
    def _create_future() -> PooledFuture:
        return PooledFuture()

    def _start_actor_loop(self) -> None:
        pool = self.actor_inbox.pool
        assert pool is not None
        pool.admit(self.actor_inbox)

    # The pieces of pykka's Actor._actor_loop, run one turn at a time by a pool worker.

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """A death is the process's (:mod:`fleet.runtime.actorkit.failfast`), as for every actor."""
        actor_died(self, exception_value)

    def _pool_setup(self) -> None:
        try:
            self.on_start()
        except BaseException:
            self._handle_failure(*sys.exc_info())

    def _pool_handle(self, envelope: Envelope[Any]) -> None:
        reply_to = envelope.reply_to
        try:
            response = self._handle_receive(envelope.message)
            if reply_to is not None:
                reply_to.set(response)
        except Exception:
            if reply_to is not None:
                logger.info("Exception returned from %s to caller:", self, exc_info=True)
                reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException:
            # pykka stops every actor here; on a shared pool we stop this one only.
            logger.exception("%s raised a BaseException; stopping it", self)
            if reply_to is not None:
                reply_to.set_exception()
            if not self.actor_stopped.is_set():
                self._stop()

    def _pool_teardown(self, undelivered: list[Envelope[Any]]) -> None:
        for envelope in undelivered:
            if envelope.reply_to is None:
                continue  # a tell queued behind the stop: dropped, as pykka does
            if isinstance(envelope.message, ActorStop):
                envelope.reply_to.set(None)
            else:
                dead = ActorDeadError(f"{self.actor_ref} stopped before handling the message")
                envelope.reply_to.set_exception(exc_info=(ActorDeadError, dead, None))

    def _stop(self) -> None:
        """Stop now (pykka's, minus the registry): later messages get ActorDeadError."""
        self.actor_stopped.set()
        logger.debug("Stopped %s", self)
        try:
            self.on_stop()
        except Exception:
            self._handle_failure(*sys.exc_info())

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Log an unexpected failure and stop this actor (pykka's, minus the registry)."""
        logger.error(
            "Unhandled exception in %s:",
            self,
            exc_info=(exception_type, exception_value, traceback),  # type: ignore[arg-type]
        )
        self.actor_stopped.set()
