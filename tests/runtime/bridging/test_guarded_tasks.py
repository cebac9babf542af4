"""Long-lived tasks are named, kept alive, and their death is reported as an actor's is."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from fleet.runtime.actorkit import failfast
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.aiokit.tasks import create_guarded_task


def _deaths_mentioning(text: str) -> list[str]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [d for d in failfast.deaths() if text in d]
        if found:
            return found
        time.sleep(0.01)
    return []


@pytest.mark.actor_death
def test_a_task_that_raises_is_a_death(event_loop_thread: EventLoopThread) -> None:
    async def start() -> None:
        async def broken() -> None:
            raise RuntimeError("watch lost its mind")

        create_guarded_task(broken(), name="watch-x")

    event_loop_thread.run(start(), timeout=5)
    assert _deaths_mentioning("task watch-x died: RuntimeError: watch lost its mind")


@pytest.mark.actor_death
def test_an_eternal_task_that_returns_is_a_death(event_loop_thread: EventLoopThread) -> None:
    async def start() -> None:
        async def quits() -> None:
            return None

        create_guarded_task(quits(), name="publisher-x")

    event_loop_thread.run(start(), timeout=5)
    assert _deaths_mentioning("task publisher-x died: it ended, and must not")


def test_a_finishable_task_may_return_and_any_task_may_be_cancelled(
    event_loop_thread: EventLoopThread,
) -> None:
    async def scenario() -> tuple[int, bool]:
        async def once() -> int:
            return 7

        async def forever() -> None:
            await asyncio.sleep(3600)

        done = create_guarded_task(once(), name="read-once", finishable=True)
        eternal = create_guarded_task(forever(), name="forever")
        await asyncio.sleep(0)
        eternal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await eternal
        return await done, eternal.cancelled()

    assert event_loop_thread.run(scenario(), timeout=5) == (7, True)
    assert failfast.deaths() == []
