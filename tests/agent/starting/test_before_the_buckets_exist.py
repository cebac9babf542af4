"""Agents started on a NATS server whose buckets do not exist yet still apply and report.

The buckets appear while the agents start (each agent creates them best effort, and so
does another writer), and the first desired entries are written right after: the
agents meet them on the live path of the desired feed, where a core message can arrive
before the stream has stored its write (see tests/agent/desired_feed/test_store_lag.py
for that interleaving forced). Bounded rounds, each on a fresh server.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest
import uvloop

from fleet.actors.agent.app import AgentApp
from fleet.actors.agent.config import AgentConfig
from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeviceId,
    Phase,
    decode_state,
    desired_state_key,
    device_state_key,
)
from fleet.devtools.simulated_runtime import SimulatedRuntime
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.server import LocalNatsServer

ROUNDS = 6
AGENTS = 3
WEB = DeploymentName("web")
SCORE = msgspec.json.encode(
    {"type": "podman", "containers": [{"name": "web", "image": "localhost/busybox:test"}]}
)


def start_agent(device: DeviceId, *, url: str, state_dir: Path) -> AgentApp:
    config = AgentConfig(
        device_id=device,
        labels={"site": "lab"},
        nats_urls=[url],
        podman_socket="unix:///nonexistent/simulated.sock",
        heartbeat_interval_s=1.0,
        state_dir=state_dir,
        resync_interval_s=1.0,
        stop_timeout_s=1.0,
    )
    app = AgentApp(config, runtime=SimulatedRuntime(), loop_factory=uvloop.new_event_loop)
    app.start()
    return app


def wait_running(loop: EventLoopThread, bus: Bus, device: DeviceId, revision: int) -> None:
    key = device_state_key(device, WEB)
    deadline = time.monotonic() + 10
    last = None
    while time.monotonic() < deadline:
        entry = loop.run(bus.get(BUCKET_DEVICE_STATE, key), timeout=10)
        last = None if entry is None else decode_state(entry.value)
        if last is not None and last.phase is Phase.RUNNING and last.desired_revision == revision:
            return
        time.sleep(0.05)
    raise AssertionError(f"{device} never reported Running at revision {revision}; last: {last}")


def one_round(index: int, root: Path, loop: EventLoopThread) -> None:
    server = LocalNatsServer(store_dir=root / "jetstream")
    server.start()
    agents: list[AgentApp] = []
    writer = Bus(urls=[server.url], name=f"writer-{index}")
    try:
        devices = [DeviceId(f"r{index}-d{i}") for i in range(AGENTS)]
        for device in devices:
            agents.append(start_agent(device, url=server.url, state_dir=root / device))
        time.sleep(0.04 * index)  # round 0 writes while the agents still create the buckets

        async def create_and_write() -> dict[DeviceId, int]:
            await writer.start()
            await writer.wait_connected(timeout=10)
            await writer.ensure_buckets()
            return {
                d: await writer.put(BUCKET_DESIRED_STATE, desired_state_key(d, WEB), SCORE)
                for d in devices
            }

        revisions = loop.run(create_and_write(), timeout=20)
        for device, revision in revisions.items():
            wait_running(loop, writer, device, revision)
    finally:
        for app in agents:
            assert app.stop(timeout=10) == []
        loop.run(writer.close(), timeout=10)
        server.stop()


@pytest.mark.timeout(60)
def test_agents_started_before_the_buckets_exist_apply_the_first_entries(
    tmp_path: Path, event_loop_thread: EventLoopThread
) -> None:
    for index in range(ROUNDS):
        one_round(index, tmp_path / f"round-{index}", event_loop_thread)
