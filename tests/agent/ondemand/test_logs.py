"""``fleetctl logs`` answered by a real agent from a real container: the tail, bounded;
a followed log that streams new lines while renewed, and ends when it is not."""

from __future__ import annotations

import asyncio
import time

import pytest

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    DeploymentName,
    LogsChunk,
    LogsRequest,
    desired_state_key,
)
from fleet.contracts.ondemand import FOLLOW_WINDOW_S, MAX_LOG_LINE_CHARS
from fleet.runtime.nats import device_ask
from tests.agent.conftest import AgentWorld, running
from tests.budgets import budget

from .conftest import ask_logs, counted, ticker

pytestmark = pytest.mark.timeout(120)
APP = DeploymentName("app")


def test_the_tail_is_the_last_n_lines_cleaned(world: AgentWorld) -> None:
    world.start_agent()
    revision = world.put_desired("app", counted(image=world.podman.image, lines=50))
    world.wait_state("app", lambda s: running(s, revision), timeout=60)

    def last_line() -> list[LogsChunk]:
        got = ask_logs(world, LogsRequest(deployment=APP, tail=5))
        return got if got[-1].lines and got[-1].lines[-1] == "line 49" else []

    chunks = _eventually(last_line, what="the container's last line")
    assert len(chunks) == 1
    chunk = chunks[0]
    assert chunk.lines == ("line 45", "line 46", "line 47", "line 48", "line 49")
    assert (chunk.done, chunk.error, chunk.container, chunk.device_id) == (
        True, None, "app", world.device,
    )  # fmt: skip

    everything = ask_logs(world, LogsRequest(deployment=APP, container="app", tail=1000))
    lines = [line for c in everything for line in c.lines]
    assert len(lines) == 50  # fewer than asked: all there is
    assert lines[0] == "line 0 ?[31mred"  # the tab a space, the escape a '?'
    assert all(len(line) <= MAX_LOG_LINE_CHARS for line in lines)
    assert ask_logs(world, LogsRequest(deployment=APP, tail=0))[0].lines == ()


def test_a_followed_log_streams_new_lines_while_renewed(world: AgentWorld) -> None:
    world.start_agent()
    revision = world.put_desired("app", ticker(image=world.podman.image, every=0.3))
    world.wait_state("app", lambda s: running(s, revision), timeout=60)
    seen: list[tuple[float, str]] = []  # (when it arrived, the line)
    chunks: list[LogsChunk] = []

    async def follow() -> None:
        request = LogsRequest(deployment=APP, tail=2, follow=True)
        stream = device_ask.logs(world.bus.transport, world.device, request,
                                 timeout=budget(10), renew_every=0.5)  # fmt: skip
        started = time.monotonic()
        async for chunk in stream:
            chunks.append(chunk)
            seen.extend((time.monotonic(), line) for line in chunk.lines)
            # long enough for many renewals; stop once lines came over time
            if time.monotonic() - started > 4 and len({round(t) for t, _ in seen}) >= 3:
                break
        await stream.aclose()

    world.loop.run(follow(), timeout=budget(60))
    ticks = [int(line.split()[1]) for _, line in seen]
    assert ticks == sorted(ticks), ticks  # in order
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), ticks  # none lost
    assert len(ticks) >= 8
    assert seen[-1][0] - seen[0][0] >= 2.0  # new lines arrived over time, not at once
    assert len({c.session for c in chunks}) == 1
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert not any(c.done for c in chunks)


def test_a_follow_survives_its_renewals_being_turned_away_for_a_while(world: AgentWorld) -> None:
    """Other asks from the same requester (a describe loop) use up its rate:
    renewals sent meanwhile are refused "rate-limited", and the follow goes on (the session
    lives on the device for its window; a later renewal gets through)."""
    world.start_agent()
    revision = world.put_desired("app", ticker(image=world.podman.image, every=0.3))
    world.wait_state("app", lambda s: running(s, revision), timeout=60)
    lines: list[str] = []
    refused: list[str] = []

    async def flood(count: int) -> None:
        # Past the requester's burst, not so fast that refusals go unanswered (those are
        # dropped at a rate of their own): a renewal meanwhile is answered "rate-limited".
        for _ in range(count):
            await asyncio.sleep(0.02)
            try:
                answer = await device_ask.describe(world.bus.transport, world.device,
                                                   timeout=budget(5))  # fmt: skip
            except device_ask.NoAnswer:
                continue
            if answer.error is not None:
                refused.append(answer.error.code)

    async def follow_through_a_flood() -> float:
        request = LogsRequest(deployment=APP, tail=1, follow=True)
        stream = device_ask.logs(world.bus.transport, world.device, request,
                                 timeout=budget(10), renew_every=0.3)  # fmt: skip
        flooding: asyncio.Task[None] | None = None
        ended = 0.0
        async for chunk in stream:
            assert not chunk.done, chunk  # a refused renewal is not the end of the follow
            lines.extend(chunk.lines)
            if flooding is None and lines:
                flooding = asyncio.create_task(flood(60))
            elif flooding is not None and flooding.done():
                ended = ended or time.monotonic()
                if time.monotonic() - ended > 3.0:  # lines go on coming after the flood
                    break
        await stream.aclose()
        assert flooding is not None
        await flooding
        return ended

    world.loop.run(follow_through_a_flood(), timeout=budget(90))
    assert "rate-limited" in refused  # the flood did use up the requester's rate
    assert len(lines) >= 10


def test_a_followed_log_not_renewed_ends_and_says_why(world: AgentWorld) -> None:
    world.start_agent()
    revision = world.put_desired("app", ticker(image=world.podman.image, every=0.5))
    world.wait_state("app", lambda s: running(s, revision), timeout=60)
    chunks: list[LogsChunk] = []

    async def follow_without_renewing() -> None:
        request = LogsRequest(deployment=APP, tail=1, follow=True)
        async for chunk in device_ask.logs(
            world.bus.transport,
            world.device,
            request,
            timeout=budget(FOLLOW_WINDOW_S + 10),
            renew_every=10_000,
        ):
            chunks.append(chunk)

    world.loop.run(follow_without_renewing(), timeout=budget(FOLLOW_WINDOW_S + 30))
    last = chunks[-1]
    assert last.done
    assert last.error is not None
    assert last.error.code == "ended"
    assert "not renewed" in last.error.message
    assert sum(len(c.lines) for c in chunks) >= 5  # it streamed until then


def test_a_followed_log_ends_when_its_container_stops(world: AgentWorld) -> None:
    world.start_agent()
    revision = world.put_desired("app", ticker(image=world.podman.image, every=0.3))
    world.wait_state("app", lambda s: running(s, revision), timeout=60)
    chunks: list[LogsChunk] = []

    async def follow() -> None:
        request = LogsRequest(deployment=APP, tail=1, follow=True)
        async for chunk in device_ask.logs(world.bus.transport, world.device, request,
                                           timeout=budget(20), renew_every=1.0):  # fmt: skip
            chunks.append(chunk)
            if len(chunks) == 2:  # the agent removes the container
                await world.bus.delete(BUCKET_DESIRED_STATE, desired_state_key(world.device, APP))

    world.loop.run(follow(), timeout=budget(60))
    assert chunks[-1].done
    assert chunks[-1].error is not None
    assert chunks[-1].error.code == "ended"


def _eventually(check, *, what: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + budget(timeout)
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {budget(timeout)}s")
        time.sleep(0.2)
