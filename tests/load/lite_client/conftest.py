"""Fixtures for the lean NATS client: a connected client, a connected LiteBus, a pinging server."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.server import free_port, nats_server_binary
from loadtest.litebus import LiteBus
from loadtest.natsproto import NatsClient
from tests.fixtures.nats import NatsServer


@pytest.fixture
def lite(nats_server: NatsServer, event_loop_thread: EventLoopThread) -> Iterator[NatsClient]:
    """A lean client connected to ``nats_server``."""
    client = NatsClient(url=nats_server.url, name="lite-test")
    event_loop_thread.run(client.connect(), timeout=10)
    try:
        yield client
    finally:
        event_loop_thread.run(client.close(), timeout=5)


@pytest.fixture
def litebus(
    bus: Bus, nats_server: NatsServer, event_loop_thread: EventLoopThread
) -> Iterator[LiteBus]:
    """A LiteBus on the server ``bus`` made the four buckets on."""
    lb = LiteBus(urls=[nats_server.url], name="litebus-test", request_timeout=5.0)

    async def up() -> None:
        await lb.start()
        await lb.wait_connected(timeout=10)
        await lb.ensure_buckets()

    event_loop_thread.run(up(), timeout=15)
    try:
        yield lb
    finally:
        event_loop_thread.run(lb.close(), timeout=5)


@pytest.fixture
def pinging_server(tmp_path: Path) -> Iterator[str]:
    """A nats-server that PINGs every 200 ms and drops a client after 3 unanswered PINGs."""
    port = free_port()
    config = tmp_path / "ping.conf"
    config.write_text(f'listen: "127.0.0.1:{port}"\nping_interval: "200ms"\nping_max: 3\n')
    log = tmp_path / "ping-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [nats_server_binary(), "-c", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 10
        while b"Server is ready" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server with {config} not ready: {log.read_text()}")
            time.sleep(0.02)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
