"""Delayed messages to actors, scheduled on the event loop.

Why it exists: pykka actors have no timers, and a thread per pending retry would be
wasteful. ``call_later`` on the one event loop is cheap; when it fires it only
``tell``s, so it never blocks the loop.

What it must never do: run actor code on the loop, or raise when the target actor has
died in the meantime (the message is dropped).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import pykka

from fleet.runtime.aiokit.loop import EventLoopThread

logger = logging.getLogger(__name__)


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class TimerPort(Protocol):
    """What actors see: tell ``ref`` ``message`` after ``delay`` seconds."""

    def tell_later(
        self, ref: pykka.ActorRef[Any], message: object, *, delay: float
    ) -> Cancellable: ...


class _Handle:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None
        self._cancelled = False

    def cancel(self) -> None:
        self._cancelled = True
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._cancel_on_loop)

    def _cancel_on_loop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class LoopTimers:
    """:class:`TimerPort` on an :class:`EventLoopThread`."""

    def __init__(self, loop_thread: EventLoopThread) -> None:
        self._loop_thread = loop_thread

    def tell_later(self, ref: pykka.ActorRef[Any], message: object, *, delay: float) -> _Handle:
        loop = self._loop_thread.loop
        handle = _Handle(loop)

        def fire() -> None:
            if handle._cancelled:
                return
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                logger.debug("timer message to dead actor %s dropped", ref)

        def arm() -> None:
            if not handle._cancelled:
                handle._timer = loop.call_later(max(0.0, delay), fire)

        if not loop.is_closed():
            loop.call_soon_threadsafe(arm)
        return handle
