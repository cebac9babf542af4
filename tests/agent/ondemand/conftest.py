"""Asking a real in-process agent (real nats-server, real podman) as fleetctl does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from fleet.contracts import DeviceDescription, DeviceId, LogsChunk, LogsRequest
from fleet.runtime.nats import device_ask, subjects
from tests.agent.conftest import AgentWorld
from tests.budgets import budget


def ticker(*, image: str, every: float = 0.3, name: str = "app") -> dict[str, Any]:
    """A container that prints ``tick N`` every ``every`` seconds, forever."""
    script = (f"trap 'exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); "
              f"sleep {every}; done")  # fmt: skip
    container = {"name": name, "image": image, "command": ["sh", "-c", script]}
    return {"type": "podman", "containers": [container]}


def counted(*, image: str, lines: int, names: tuple[str, ...] = ("app",)) -> dict[str, Any]:
    """Containers that each print ``line 0`` .. ``line N-1`` (and a tab and an escape in
    line 0), then sleep."""
    script = (f"printf 'line 0\\t\\033[31mred\\n'; i=1; while [ $i -lt {lines} ]; do "
              f"echo line $i; i=$((i+1)); done; trap 'exit 0' TERM; sleep 3600 & wait")  # fmt: skip
    return {"type": "podman", "containers": [
        {"name": n, "image": image, "command": ["sh", "-c", script]} for n in names]}  # fmt: skip


def ask_logs(world: AgentWorld, request: LogsRequest, *, timeout: float = 10.0) -> list[LogsChunk]:
    """Every chunk of the answer (not followed)."""

    async def run() -> list[LogsChunk]:
        return [c async for c in device_ask.logs(world.bus.transport, world.device, request,
                                                 timeout=budget(timeout))]  # fmt: skip

    result: list[LogsChunk] = world.loop.run(run(), timeout=budget(timeout) + 10)
    return result


def ask_describe(world: AgentWorld, *, timeout: float = 10.0) -> DeviceDescription:
    result: DeviceDescription = world.loop.run(
        device_ask.describe(world.bus.transport, world.device, timeout=budget(timeout)),
        timeout=budget(timeout) + 10,
    )
    return result


@contextlib.asynccontextmanager
async def raw_client(url: str) -> AsyncIterator[Client]:
    client = await nats.connect(url, allow_reconnect=False, connect_timeout=2)
    try:
        yield client
    finally:
        await client.close()


async def raw_request(client: Client, subject: str, data: bytes, *, timeout: float) -> bytes | None:
    """The first answer's bytes, or None when none came. The reply subject is an ask of
    the device the subject names (as fleetctl makes it): a device answers no other."""
    device, _kind = subjects.parse_device_request(subject)
    reply = f"{subjects.ask_inbox(client.new_inbox(), device)}.1"
    answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def first(msg: Msg) -> None:
        if not answer.done():
            answer.set_result(bytes(msg.data))

    sub = await client.subscribe(reply, cb=first, max_msgs=1)
    try:
        await client.publish(subject, data, reply=reply)
        return await asyncio.wait_for(answer, timeout)
    except TimeoutError:
        return None
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()


def device_of(world: AgentWorld) -> DeviceId:
    return world.device
