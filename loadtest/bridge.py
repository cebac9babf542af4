"""The gevent <-> asyncio bridge: nats-py (asyncio) driven from locust users (greenlets).

Why it exists: locust runs every user as a greenlet and monkey-patches the process with
gevent; nats-py is asyncio. Measured on this machine: a *real* OS thread running
uvloop + nats-py, fed with ``loop.call_soon_threadsafe`` and answering the waiting
greenlet through ``hub.loop.run_callback_threadsafe(async_result.set, ...)``, did
~9,600 KV puts/s from one locust process with no failures. What does not work: a thread
from the patched ``threading`` module (it is a greenlet, so the asyncio loop blocks the
hub) and ``concurrent.futures`` (its waiting blocks the hub, not just one greenlet).

So :class:`AsyncioBridge`:

* starts its loop on a thread made with gevent's *original*
  ``_thread.start_new_thread`` (``monkey.get_original``), never the patched one;
* greenlet -> loop: :meth:`submit` / :meth:`call` schedule a coroutine with
  ``call_soon_threadsafe`` and hand back a gevent ``AsyncResult``; only the calling
  greenlet waits, the hub keeps running every other user;
* loop -> greenlets: :meth:`to_gevent` runs a plain callback on the hub's thread
  (``run_callback_threadsafe``); that is how results and locust events cross back.

What it must never do: block the asyncio thread on anything gevent owns (a gevent lock,
``AsyncResult.get``), fire locust events from the asyncio thread (locust's statistics are
not thread-safe: go through :meth:`to_gevent`), or be started before locust forks its
worker processes (an OS thread does not survive ``fork``: start it lazily, per process).

Limits (see docs/loadtest.md): one loop thread is one core at most; every crossing costs
a wake-up of the other side, so a hot path should batch (a device reports from the loop
side on its own and only crosses for what locust must record).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import gevent
from gevent import monkey
from gevent.event import AsyncResult

T = TypeVar("T")

_start_new_thread = monkey.get_original("_thread", "start_new_thread")


def _uvloop_factory() -> asyncio.AbstractEventLoop:
    import uvloop

    return uvloop.new_event_loop()


class AsyncioBridge:
    """One asyncio loop (uvloop by default) on a real OS thread, callable from greenlets."""

    def __init__(
        self,
        *,
        name: str = "loadtest-loop",
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> None:
        self._name = name
        self._loop_factory = loop_factory or _uvloop_factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hub_loop: Any = None
        self._stopped: AsyncResult | None = None
        self._keepalive: Any = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError(f"bridge {self._name!r} is not started")
        return self._loop

    @property
    def running(self) -> bool:
        return self._loop is not None and self._stopped is not None and not self._stopped.ready()

    def start(self, *, timeout: float = 10.0) -> None:
        """Start the loop thread (call from a greenlet of the gevent thread)."""
        if self._loop is not None:
            raise RuntimeError(f"bridge {self._name!r} already started")
        self._hub_loop = gevent.get_hub().loop
        # A live watcher for as long as the loop thread runs: outcomes come back through
        # run_callback_threadsafe, which gevent does not count as something to wait for,
        # so a greenlet alone waiting for one could get LoopExit ("would block forever",
        # seen under load; gevent #2124).
        self._keepalive = self._hub_loop.async_()
        self._keepalive.start(_nothing)
        ready: AsyncResult = AsyncResult()
        stopped: AsyncResult = AsyncResult()
        self._stopped = stopped
        loop = self._loop_factory()
        self._loop = loop
        hub_loop = self._hub_loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(hub_loop.run_callback_threadsafe, ready.set, None)
            try:
                loop.run_forever()
            finally:
                loop.close()
                hub_loop.run_callback_threadsafe(stopped.set, None)

        _start_new_thread(run, ())
        ready.get(timeout=timeout)

    def stop(self, *, timeout: float = 10.0) -> None:
        """Cancel what is left on the loop, stop it and wait for the thread to end."""
        if self._loop is None or self._stopped is None or self._stopped.ready():
            return
        try:
            self.call(_cancel_all, timeout=timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            try:
                self._stopped.get(timeout=timeout)
            finally:
                if self._keepalive is not None:
                    self._keepalive.stop()
                    self._keepalive.close()
                    self._keepalive = None

    # -- greenlet -> loop -------------------------------------------------------------

    def submit(self, fn: Callable[..., Awaitable[T]], *args: Any) -> AsyncResult:
        """Run ``fn(*args)`` on the loop; the ``AsyncResult`` gets its outcome."""
        result: AsyncResult = AsyncResult()
        hub_loop = self._hub_loop

        def done(task: asyncio.Future[T]) -> None:
            if task.cancelled():
                hub_loop.run_callback_threadsafe(
                    result.set_exception, asyncio.CancelledError(f"{fn!r} was cancelled")
                )
            elif (exc := task.exception()) is not None:
                hub_loop.run_callback_threadsafe(result.set_exception, exc)
            else:
                hub_loop.run_callback_threadsafe(result.set, task.result())

        def begin() -> None:
            try:
                task = asyncio.ensure_future(fn(*args))
            except BaseException as exc:  # a bad call must still answer the greenlet
                hub_loop.run_callback_threadsafe(result.set_exception, exc)
                return
            task.add_done_callback(done)

        self.loop.call_soon_threadsafe(begin)
        return result

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, timeout: float) -> T:
        """Run ``fn(*args)`` on the loop and wait for it in this greenlet only."""
        value: T = self.submit(fn, *args).get(timeout=timeout)
        return value

    def call_soon(self, fn: Callable[..., object], *args: Any) -> None:
        """Run a plain callback on the loop thread (fire and forget)."""
        self.loop.call_soon_threadsafe(fn, *args)

    # -- loop -> greenlets ------------------------------------------------------------

    def to_gevent(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on the gevent hub's thread (callable from the loop thread)."""
        self._hub_loop.run_callback_threadsafe(fn, *args)


def _nothing() -> None:
    """The keep-alive watcher's callback: it is never sent."""


async def _cancel_all() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
