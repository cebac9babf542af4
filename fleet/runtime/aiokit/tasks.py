"""Long-lived tasks on the event loop: created in one place, named, and never lost silently.

Why it exists: a task that dies with nobody awaiting it leaves one "Task exception was
never retrieved" line at garbage collection, if that; meanwhile a watch stops watching
or a publisher stops publishing and the process looks healthy. Every long-lived task in
fleet is started with :func:`create_guarded_task` (kopf's ``aiotasks.create_guarded_task``
is the model): it is named, kept referenced until it ends, and if it raises, or returns
although it is not ``finishable``, the death is reported as an actor's is
(:func:`fleet.runtime.actorkit.failfast.report_death`): one CRITICAL line, and the
process stops with exit code 70 so that systemd or Kubernetes restart it. Cancellation is
how tasks are stopped, and is not a death.

What it must never do: swallow an exception, or let a task be garbage-collected while it
runs (asyncio keeps only weak references to tasks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from fleet.runtime.actorkit.failfast import report_death

logger = logging.getLogger(__name__)

T = TypeVar("T")

_running: set[asyncio.Task[Any]] = set()  # strong references until each task ends


async def guard(coro: Coroutine[Any, Any, T], *, name: str, finishable: bool = False) -> T:
    """Await ``coro``; report its death (an exception, or an end it should not have)."""
    try:
        result = await coro
    except asyncio.CancelledError:
        logger.debug("task %s cancelled", name)
        raise
    except Exception as exc:
        logger.exception("task %s failed", name)
        report_death(f"task {name}", exc)
        raise
    if not finishable:
        report_death(f"task {name}", None)
    return result


def create_guarded_task(
    coro: Coroutine[Any, Any, T], *, name: str, finishable: bool = False
) -> asyncio.Task[T]:
    """Start ``coro`` as a task named ``name`` on the running loop, guarded by :func:`guard`.

    ``finishable``: the task may return (a connect loop, a one-off read); otherwise its
    return is a death, as an exception is.
    """
    task = asyncio.get_running_loop().create_task(
        guard(coro, name=name, finishable=finishable), name=name
    )
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None, grace: float = 1.5) -> None:
    """Cancel each task and wait until it has ended, cancelling it again as often as it
    takes; what it ends with (its cancellation, an error) is not raised here.

    Cancelled again until it ends, because a cancellation can be swallowed on the way:
    Python 3.11's ``asyncio.wait_for`` loses one when its inner future ends at the same
    moment (nats-py's request and flush use it), and the task then runs on after its stop
    (seen: a watch stopped just as it re-created its consumer after a reconnect waited
    for its next restart, for ever). ``grace`` lets a task's bounded clean-up (a consumer
    delete) finish before the next cancellation.
    """
    live = [t for t in tasks if t is not None]
    for task in live:
        task.cancel()
    for task in live:
        while not task.done():
            await asyncio.wait({task}, timeout=grace)
            task.cancel()
        if not task.cancelled():
            task.exception()  # retrieved, not raised: a stop is no place for it (a
            # guarded task's error was reported by guard() as it happened)
