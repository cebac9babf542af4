"""Stopping and quieting the loop's tasks: `cancel_and_wait` ends a task that swallowed a
cancellation; the TLS end-of-file warning is hushed, nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from fleet.runtime.aiokit.tasks import cancel_and_wait

pytestmark = pytest.mark.timeout(30)


async def _swallows_one() -> None:
    """What Python 3.11's wait_for does when its inner future ends as the cancel comes:
    the cancellation is lost, and the coroutine goes on to wait for ever."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(3600)
    await asyncio.Event().wait()


async def _fails() -> None:
    raise RuntimeError("boom")


def test_a_task_that_swallowed_a_cancellation_still_ends() -> None:
    async def run() -> bool:
        task = asyncio.get_running_loop().create_task(_swallows_one())
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_and_wait(task, grace=0.05), timeout=10)
        return task.cancelled()

    assert asyncio.run(run())


def test_ended_failed_and_absent_tasks_are_fine() -> None:
    async def run() -> None:
        failed = asyncio.get_running_loop().create_task(_fails())
        await asyncio.sleep(0)
        await cancel_and_wait(failed, None)  # its error is not raised here
        assert isinstance(failed.exception(), RuntimeError)

    asyncio.run(run())


def test_the_tls_eof_warning_is_hushed_and_nothing_else(caplog: pytest.LogCaptureFixture) -> None:
    from fleet.runtime.aiokit.loop import hush_tls_eof_warning

    hush_tls_eof_warning()
    noisy = logging.getLogger("asyncio")
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        noisy.warning("returning true from eof_received() has no effect when using ssl")
        noisy.warning("Task was destroyed but it is pending!")
    assert [r.getMessage() for r in caplog.records] == ["Task was destroyed but it is pending!"]
