"""The real `fleet-agent` process: info, heartbeats, SIGHUP reload, clean SIGTERM."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleet.contracts import (
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    DeviceInfo,
    HeartbeatPayload,
    decode_heartbeat,
    decode_info,
    device_heartbeat_key,
    device_info_key,
)
from tests.agent.conftest import AgentWorld, fetch, httpd_score, running
from tests.budgets import AGENT_STOP_S
from tests.fixtures.podman import free_port

pytestmark = pytest.mark.podman

CONFIG = """
device_id = "{device}"
[labels]
site = "{site}"
[nats]
urls = ["{url}"]
[podman]
socket = "{socket}"
[agent]
heartbeat_interval_s = 0.5
state_dir = "{state}"
resync_interval_s = 1
stop_timeout_s = 2
"""


def write_config(world: AgentWorld, path: Path, *, site: str) -> None:
    path.write_text(
        CONFIG.format(
            device=world.device,
            site=site,
            url=world.nats.url,
            socket=world.podman.socket_url,
            state=world.state_root / "state",
        )
    )


def info(world: AgentWorld) -> DeviceInfo | None:
    entry = world.loop.run(
        world.bus.get(BUCKET_DEVICE_INFO, device_info_key(world.device)), timeout=5
    )
    return None if entry is None else decode_info(entry.value)


def heartbeat(world: AgentWorld) -> HeartbeatPayload | None:
    entry = world.loop.run(
        world.bus.get(BUCKET_DEVICE_HEARTBEAT, device_heartbeat_key(world.device)), timeout=5
    )
    return None if entry is None else decode_heartbeat(entry.value)


def wait(check, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition never held")


@pytest.mark.timeout(90)
def test_agent_process_end_to_end(world: AgentWorld, tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    write_config(world, config, site="lab")
    env = dict(os.environ, FLEET_AGENT_CONFIG=str(config), FLEET_LOG_LEVEL="WARNING")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet.cli.agent"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = wait(lambda: info(world))
        assert first.labels == {"site": "lab"}
        assert first.inventory.arch == platform.machine()
        assert first.inventory.runtime_name == "podman"
        assert first.inventory.runtime_version.startswith("4.")
        assert first.inventory.cpus >= 1
        assert first.inventory.memory_bytes > 0

        beat = wait(lambda: heartbeat(world))
        later = wait(lambda: (h := heartbeat(world)) is not None and h.seq >= beat.seq + 2 and h)
        assert later.at > beat.at

        port = free_port()
        rev = world.put_desired("web", httpd_score(image=world.podman.image, port=port))
        world.wait_state("web", lambda s: running(s, rev))

        write_config(world, config, site="field")
        proc.send_signal(signal.SIGHUP)
        relabelled = wait(
            lambda: (i := info(world)) is not None and i.labels.get("site") == "field" and i
        )
        assert relabelled.updated_at > first.updated_at

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - started < AGENT_STOP_S
        assert fetch(port) == "hello from fleet\n"  # workloads keep running
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        _, err = proc.communicate(timeout=5)
    assert "Traceback" not in err, err
