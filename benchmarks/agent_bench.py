"""Measure fleet-agent: idle RSS/CPU with 3 deployments, and desired put -> serving/Running.

Run: .venv/bin/python benchmarks/agent_bench.py [--idle-seconds 30] [--rounds 5]

Brings up everything itself (a nats-server on a free port, the private podman world of
tests/fixtures/podman.py, the local registry) and runs the real `fleet-agent` process
(python -m fleet.cli.agent), so the figures are the agent's own. Bounded in rounds
and time; prints one line per figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import msgspec
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeviceId,
    Phase,
    decode_report_entry,
    desired_state_key,
    device_state_key,
)
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.server import LocalNatsServer, free_port
from tests.fixtures.podman import podman_world

DEVICE = DeviceId("bench-01")
CMD = ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 80 -h /www & wait"]


def score(image: str, port: int) -> bytes:
    return msgspec.json.encode(
        {
            "type": "podman",
            "containers": [
                {
                    "name": "web",
                    "image": image,
                    "command": CMD,
                    "ports": [{"host_port": port, "container_port": 80}],
                }
            ],
        }
    )


def serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=0.5) as r:
            status: int = r.status
            return status == 200
    except OSError:
        return False


def proc_stats(pid: int) -> tuple[float, int]:
    """(cpu seconds user+system, rss bytes) of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def main() -> None:  # noqa: PLR0915 - one linear scenario
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="agent-bench-"))
    nats = LocalNatsServer(store_dir=tmp / "js")
    nats.start()
    loop = EventLoopThread(name="bench", loop_factory=uvloop.new_event_loop)
    loop.start()
    bus = Bus(urls=[nats.url], name="bench")
    loop.run(bus.start(), timeout=5)
    loop.run(bus.wait_connected(timeout=10), timeout=15)
    loop.run(bus.ensure_buckets(), timeout=10)
    with podman_world() as world:
        config = tmp / "agent.toml"
        config.write_text(
            f'device_id = "{DEVICE}"\n[labels]\nsite = "bench"\n[nats]\nurls = ["{nats.url}"]\n'
            f'[podman]\nsocket = "{world.socket_url}"\n[agent]\nheartbeat_interval_s = 10\n'
            f'state_dir = "{tmp / "state"}"\nstop_timeout_s = 2\n'
        )
        env = dict(os.environ, FLEET_LOG_LEVEL="WARNING")
        agent = subprocess.Popen(
            [sys.executable, "-m", "fleet.cli.agent", "--config", str(config)], env=env
        )
        try:
            time.sleep(2)
            put_to_serving: list[float] = []
            put_to_running: list[float] = []
            for i in range(args.rounds + 3):
                port = free_port()
                deployment = DeploymentName(f"d{i}")
                key = desired_state_key(DEVICE, deployment)
                started = time.monotonic()
                rev = loop.run(
                    bus.put(BUCKET_DESIRED_STATE, key, score(world.image, port)), timeout=5
                )
                served = running = None
                deadline = started + 30
                while (served is None or running is None) and time.monotonic() < deadline:
                    if served is None and serving(port):
                        served = time.monotonic() - started
                    if running is None:
                        report = device_state_key(DEVICE, deployment)
                        entry = loop.run(bus.get(BUCKET_DEVICE_STATE, report), timeout=5)
                        state = decode_report_entry(report, entry.value).state if entry else None
                        if state and state.phase is Phase.RUNNING and state.desired_revision == rev:
                            running = time.monotonic() - started
                    time.sleep(0.005)
                if served is None or running is None:
                    raise SystemExit(f"round {i}: not serving/Running within 30 s")
                if i >= 3:  # the first 3 are the idle deployments; keep them, time the rest
                    put_to_serving.append(served)
                    put_to_running.append(running)
                if i >= 3:
                    loop.run(bus.delete(BUCKET_DESIRED_STATE, key), timeout=5)
                    time.sleep(1.0)
            print(
                "put -> serving (image present): "
                f"median {statistics.median(put_to_serving) * 1000:.0f} ms, "
                f"max {max(put_to_serving) * 1000:.0f} ms over {len(put_to_serving)} rounds"
            )
            print(
                "put -> Running reported:        "
                f"median {statistics.median(put_to_running) * 1000:.0f} ms, "
                f"max {max(put_to_running) * 1000:.0f} ms over {len(put_to_running)} rounds"
            )
            time.sleep(3)  # settle: 3 deployments running
            cpu0, _ = proc_stats(agent.pid)
            time.sleep(args.idle_seconds)
            cpu1, rss = proc_stats(agent.pid)
            print(
                f"idle with 3 deployments: RSS {rss / 2**20:.1f} MiB, "
                f"CPU {100 * (cpu1 - cpu0) / args.idle_seconds:.2f}% of one core "
                f"over {args.idle_seconds:.0f} s (resync every 10 s, heartbeat every 10 s)"
            )
        finally:
            agent.terminate()
            agent.wait(15)
    loop.run(bus.close(), timeout=5)
    loop.stop()
    nats.stop()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
