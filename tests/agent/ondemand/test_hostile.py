"""Hostile requests to a real agent: each gets a clear error answer (or, without an inbox
to answer, nothing), none hurts the agent, and a flood is rate-limited."""

from __future__ import annotations

import asyncio
import json

import pytest
from nats.aio.msg import Msg

from fleet.contracts import (
    DeploymentName,
    LogsRequest,
    decode_description,
    decode_logs_chunk,
)
from fleet.runtime.nats import subjects
from tests.agent.conftest import AgentWorld, running
from tests.budgets import budget

from .conftest import ask_describe, ask_logs, counted, raw_client, raw_request, ticker

pytestmark = pytest.mark.timeout(120)


def test_hostile_requests_get_clear_errors_and_the_agent_goes_on(world: AgentWorld) -> None:
    world.start_agent()
    revision = world.put_desired("app", counted(image=world.podman.image, lines=3,
                                                names=("app", "sidecar")))  # fmt: skip
    world.wait_state("app", lambda s: running(s, revision), timeout=60)
    logs = subjects.device_request(world.device, "logs")
    describe = subjects.device_request(world.device, "describe")
    cases = {
        "oversized": (logs, b'{"deployment": "app", "x": "' + b"a" * 10_000 + b'"}'),
        "not json": (logs, b"\xff\xfe{{{"),
        "deeply nested": (logs, b"[" * 5000),
        "a number": (logs, b"42"),
        "bad tail": (logs, json.dumps({"deployment": "app", "tail": -1}).encode()),
        "huge tail": (logs, json.dumps({"deployment": "app", "tail": 10**30}).encode()),
        "bad name": (logs, json.dumps({"deployment": "../../etc"}).encode()),
        "unknown deployment": (logs, json.dumps({"deployment": "nope"}).encode()),
        "not its container": (logs, json.dumps({"deployment": "app", "container": "db"}).encode()),
        "two containers, none named": (logs, json.dumps({"deployment": "app"}).encode()),
        "unknown session": (
            logs,
            json.dumps({"deployment": "app", "session": "0123456789abcdef"}).encode(),
        ),
        "describe garbage": (describe, b"[1, 2"),
    }

    async def scenario() -> dict[str, tuple[str, str]]:
        answers: dict[str, tuple[str, str]] = {}
        async with raw_client(world.nats.url) as client:
            for what, (subject, data) in cases.items():
                raw = await raw_request(client, subject, data, timeout=budget(10))
                assert raw is not None, f"{what}: no answer"
                decoded = (decode_description(raw) if subject == describe
                           else decode_logs_chunk(raw))  # fmt: skip
                assert decoded.error is not None, what
                answers[what] = (decoded.error.code, decoded.error.message)
            # A reply subject that is no inbox (a bucket's subject): never answered.
            seen: list[bytes] = []

            async def keep(msg: Msg) -> None:
                seen.append(msg.data)

            sub = await client.subscribe("$KV.>", cb=keep)
            await client.publish(describe, b"{}", reply="$KV.desired-state.x.y")
            await client.flush()
            assert await raw_request(client, describe, b"{}", timeout=budget(10))
            await sub.unsubscribe()
            assert seen == []
        return answers

    answers = world.loop.run(scenario(), timeout=budget(90))
    for what in ("oversized", "not json", "deeply nested", "a number", "bad tail", "huge tail",
                 "bad name", "describe garbage"):  # fmt: skip
        assert answers[what][0] == "bad-request", (what, answers[what])
    assert "too large" in answers["oversized"][1]
    assert "tail" in answers["bad tail"][1]
    assert "deployment" in answers["bad name"][1]
    assert answers["unknown deployment"] == (
        "not-found",
        f"deployment nope has no container on {world.device}",
    )
    assert answers["not its container"] == (
        "not-found", "container 'db' is not one of app's containers: app, sidecar")  # fmt: skip
    assert answers["two containers, none named"][0] == "bad-request"
    assert "app, sidecar" in answers["two containers, none named"][1]
    assert answers["unknown session"][0] == "ended"
    # And it still answers, correctly.
    chunk = ask_logs(world, LogsRequest(deployment=DeploymentName("app"), container="sidecar",
                                        tail=1))[0]  # fmt: skip
    assert chunk.lines == ("line 2",)
    assert ask_describe(world).device_id == world.device


def test_a_flood_is_rate_limited_and_the_agent_answers_after(world: AgentWorld) -> None:
    world.start_agent()
    revision = world.put_desired("app", ticker(image=world.podman.image))
    world.wait_state("app", lambda s: running(s, revision), timeout=60)
    subject = subjects.device_request(world.device, "describe")

    async def flood() -> list[str]:
        """300 requests sent back to back (every reply inbox subscribed first, so that
        they reach the agent within a moment and its rate limits, not this loop, decide)."""
        async with raw_client(world.nats.url) as client:
            base = subjects.ask_inbox(client.new_inbox(), world.device)
            answers: dict[str, bytes] = {}

            async def keep(msg: Msg) -> None:
                answers.setdefault(msg.subject, bytes(msg.data))

            sub = await client.subscribe(f"{base}.*", cb=keep)
            await client.flush()
            for n in range(300):
                await client.publish(subject, b"{}", reply=f"{base}.{n}")
            await client.flush()
            quiet_since, seen = asyncio.get_running_loop().time(), 0
            deadline = quiet_since + budget(15)
            # until answers came and then none for 2 s (each answer is at once or never)
            while asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
                now = asyncio.get_running_loop().time()
                if len(answers) != seen:
                    quiet_since, seen = now, len(answers)
                elif seen and now - quiet_since > budget(2.0):
                    break
            await sub.unsubscribe()
        raws = [answers.get(f"{base}.{n}") for n in range(300)]
        return [
            "none"
            if raw is None
            else (error.code if (error := decode_description(raw).error) else "ok")
            for raw in raws
        ]

    codes = world.loop.run(flood(), timeout=budget(60))
    counts = {code: codes.count(code) for code in set(codes)}
    assert counts.get("ok", 0) >= 1, counts
    assert counts.get("ok", 0) <= 60, counts  # the burst and what the rate refills meanwhile
    assert counts.get("rate-limited", 0) >= 1, counts  # a refusal says why...
    # ...at a bounded rate: most of the flood is dropped unanswered, cheaply.
    assert counts.get("none", 0) >= 200, counts
    # Once the flood is over, it answers again.
    assert _eventually_answers(world)


def _eventually_answers(world: AgentWorld) -> bool:
    import time

    deadline = time.monotonic() + budget(20)
    while time.monotonic() < deadline:
        described = ask_describe(world)
        if described.error is None:
            return True
        time.sleep(0.5)
    return False


def _keep(seen: list[bytes], data: bytes) -> None:
    seen.append(data)
