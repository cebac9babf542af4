"""The one boundary between pykka actors (threads) and asyncio (one loop, one thread).

Why it exists: nats-py is asyncio, pykka actors are threads. Every crossing goes
through here, in one of two directions:

* actor -> loop: :meth:`EventLoopThread.submit` schedules a coroutine on the loop and
  returns a :class:`concurrent.futures.Future`. :func:`tell_when_done` turns its outcome
  into a message told back to an actor, so no actor ever waits on the loop.
* loop -> actor: a callback on the loop calls ``ref.tell(message)``. ``tell`` only puts
  an envelope in a queue, so it never blocks the loop.

What it must never do: run a blocking call on the loop, or wait on a pykka future from
the loop (``ask().get()`` there freezes every NATS callback until the actor answers, and
deadlocks if that actor waits on the loop). :meth:`EventLoopThread.run` refuses to run
on the loop's own thread for the same reason.

uvloop is not imported here: entry points choose it with ``loop_factory`` (the house
style: never an event-loop policy as an import side effect).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pykka

from fleet.runtime.aiokit.tasks import guard

logger = logging.getLogger(__name__)

T = TypeVar("T")


class EventLoopThread:
    """An asyncio event loop running forever on a dedicated daemon thread."""

    def __init__(
        self,
        *,
        name: str = "fleet-loop",
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> None:
        self._name = name
        self._loop_factory = loop_factory or asyncio.new_event_loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError(f"event loop thread {self._name!r} is not started")
        return self._loop

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def start(self) -> None:
        """Start the loop thread; return once the loop is running."""
        if self._thread is not None:
            raise RuntimeError(f"event loop thread {self._name!r} already started")
        loop = self._loop_factory()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        if not ready.wait(timeout=10):
            raise RuntimeError(f"event loop thread {self._name!r} did not start")

    def stop(self, *, timeout: float = 5.0) -> None:
        """Cancel what is left on the loop, stop it, close it and join the thread."""
        if self._thread is None or self._loop is None:
            return
        loop = self._loop
        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._cancel_all(), loop).result(timeout)
            except (TimeoutError, concurrent.futures.TimeoutError):
                logger.warning(
                    "tasks on %s did not finish cancelling in %.1fs", self._name, timeout
                )
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.error("event loop thread %s did not stop within %.1fs", self._name, timeout)
                return
        loop.close()
        self._thread = None

    async def _cancel_all(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.loop.shutdown_asyncgens()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop from another thread; return its future."""
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError("submit() called on the event loop thread: await the coroutine")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float) -> T:
        """Run ``coro`` on the loop and wait for it (entry points and tests only)."""
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError("run() would block the event loop on itself")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except (TimeoutError, concurrent.futures.TimeoutError):
            future.cancel()
            raise

    def spawn(
        self, coro: Coroutine[Any, Any, None], *, name: str
    ) -> concurrent.futures.Future[None]:
        """Start a long-lived task: named, kept referenced, logged if it dies."""
        result: concurrent.futures.Future[None] = concurrent.futures.Future()
        result.set_running_or_notify_cancel()

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            coro.close()  # no-op once it ran; silences "never awaited" if cancelled first
            if task.cancelled():
                result.set_exception(concurrent.futures.CancelledError())
            elif (exc := task.exception()) is not None:
                result.set_exception(exc)
            else:
                result.set_result(None)

        def create() -> None:
            task = self.loop.create_task(guard(coro, name=name, finishable=True), name=name)
            self._tasks.add(task)
            task.add_done_callback(done)

        self.loop.call_soon_threadsafe(create)
        return result


def tell_when_done(
    future: concurrent.futures.Future[T],
    ref: pykka.ActorRef[Any],
    *,
    on_result: Callable[[T], object],
    on_error: Callable[[BaseException], object],
) -> None:
    """When ``future`` completes, tell ``ref`` the message built from its outcome.

    The message builders run on whichever thread completes the future (usually the
    loop's): keep them to constructing a message. A dead actor is not an error here:
    its reply is dropped.
    """

    def done(fut: concurrent.futures.Future[T]) -> None:
        if fut.cancelled():
            message = on_error(concurrent.futures.CancelledError())
        elif (exc := fut.exception()) is not None:
            message = on_error(exc)
        else:
            message = on_result(fut.result())
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            logger.debug("reply to dead actor %s dropped", ref)

    future.add_done_callback(done)


def _not_tls_eof(record: logging.LogRecord) -> bool:
    return "eof_received" not in record.getMessage()


def hush_tls_eof_warning() -> None:
    """Drop asyncio's (and uvloop's) "returning true from eof_received() has no effect
    when using ssl": said each time a TLS connection of nats-py's ends, harmless (nats-py
    reconnects or closes either way), and it drowned the warnings that matter."""
    logging.getLogger("asyncio").addFilter(_not_tls_eof)
