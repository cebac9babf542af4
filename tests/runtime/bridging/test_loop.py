"""Actors hand work to the event loop and get results back as messages."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any

import msgspec
import pykka
import pytest

from fleet.runtime.aiokit.loop import EventLoopThread, tell_when_done


class Done(msgspec.Struct, frozen=True):
    value: int
    thread: str


class Failed(msgspec.Struct, frozen=True):
    error: str


class Asker(pykka.ThreadingActor):
    """Submits coroutines to the loop and records replies in arrival order."""

    def __init__(self, loop: EventLoopThread) -> None:
        super().__init__()
        self.loop = loop
        self.replies: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "go":
            for i in range(5):
                tell_when_done(
                    self.loop.submit(square(i)),
                    self.actor_ref,
                    on_result=lambda v: Done(v, threading.current_thread().name),
                    on_error=lambda e: Failed(repr(e)),
                )
            tell_when_done(
                self.loop.submit(boom()),
                self.actor_ref,
                on_result=lambda v: Done(v, ""),
                on_error=lambda e: Failed(repr(e)),
            )
            return None
        if message == "replies":
            return list(self.replies)
        self.replies.append((message, threading.current_thread().name))
        return None


async def square(i: int) -> int:
    await asyncio.sleep(0.01 * (5 - i))
    return i * i


async def boom() -> int:
    raise RuntimeError("boom")


def test_results_reach_the_actor_as_messages(event_loop_thread: EventLoopThread) -> None:
    ref = Asker.start(event_loop_thread)
    try:
        ref.tell("go")
        replies: list[Any] = []
        for _ in range(100):
            replies = ref.ask("replies", block=True, timeout=5)
            if len(replies) == 6:
                break
            threading.Event().wait(0.02)
        values = sorted(m.value for m, _ in replies if isinstance(m, Done))
        assert values == [0, 1, 4, 9, 16]
        errors = [m.error for m, _ in replies if isinstance(m, Failed)]
        assert errors == ["RuntimeError('boom')"]
        # the coroutine ran on the loop's thread; the handler ran on the actor's own thread
        assert {m.thread for m, _ in replies if isinstance(m, Done)} == {"test-loop"}
        assert all(thread != "test-loop" for _, thread in replies)
    finally:
        ref.stop()


def test_run_and_submit_refuse_the_loop_thread(event_loop_thread: EventLoopThread) -> None:
    async def inner() -> str:
        coro = asyncio.sleep(0)
        try:
            event_loop_thread.run(coro, timeout=1)
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    assert "block the event loop" in event_loop_thread.run(inner(), timeout=5)


@pytest.mark.actor_death
def test_spawned_task_that_dies_is_logged(
    event_loop_thread: EventLoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    async def dies() -> None:
        raise ValueError("task went wrong")

    with caplog.at_level(logging.ERROR):
        future = event_loop_thread.spawn(dies(), name="doomed")
        with pytest.raises(ValueError, match="task went wrong"):
            future.result(timeout=5)
    assert any("task doomed died" in r.getMessage() for r in caplog.records)


def test_stop_cancels_long_lived_tasks() -> None:
    loop = EventLoopThread(name="short-lived")
    loop.start()
    cancelled = threading.Event()
    started = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    future = loop.spawn(forever(), name="forever")
    assert started.wait(5)
    loop.stop(timeout=5)
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(timeout=1)
    assert cancelled.is_set()
    assert not loop.running


def test_reply_to_a_dead_actor_is_dropped(event_loop_thread: EventLoopThread) -> None:
    ref = Asker.start(event_loop_thread)
    ref.stop()
    future = event_loop_thread.submit(square(3))
    tell_when_done(future, ref, on_result=lambda v: Done(v, ""), on_error=lambda e: Failed(""))
    assert future.result(timeout=5) == 9  # no exception escapes into the loop
