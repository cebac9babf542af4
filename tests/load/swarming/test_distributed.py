"""Locust's distributed mode on loopback: one master, two workers, simulated devices on both.

This is how a user scales the swarm past one machine (``--master`` here, ``--worker
--master-host`` there); the swarm's options are given to the master only and must reach
every worker.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    decode_state,
)
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.server import free_port
from tests.fixtures.nats import NatsServer

REPO = Path(__file__).resolve().parents[3]
LOCUSTFILE = REPO / "loadtest" / "locustfile.py"
LOCUST = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
SCORE = b'{"type": "podman", "containers": [{"name": "a", "image": "busybox:1"}]}'


@pytest.mark.timeout(150)
def test_a_master_and_two_workers_run_devices_on_both(
    nats_server: NatsServer, bus: Bus, event_loop_thread: EventLoopThread, tmp_path: Path
) -> None:
    port = free_port()
    logs = [(tmp_path / name).open("wb") for name in ("master.log", "worker0.log", "worker1.log")]
    master = subprocess.Popen(
        [
            *LOCUST,
            "--master",
            "--headless",
            "--expect-workers",
            "2",
            "-u",
            "6",
            "-r",
            "6",
            "--run-time",
            "40s",
            "--stop-timeout",
            "0",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
            "--csv",
            str(tmp_path / "dist"),
            "--only-summary",
            "--nats-url",
            nats_server.url,
            "--swarm-id",
            "dist",
            "--heartbeat-interval",
            "1",
            "--pending-s",
            "0",
            "--pulling-s",
            "0.05",
            "--starting-s",
            "0",
        ],
        cwd=REPO,
        stdout=logs[0],
        stderr=subprocess.STDOUT,
    )
    workers = [
        subprocess.Popen(
            [*LOCUST, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
            cwd=REPO,
            stdout=logs[1 + i],
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    try:
        infos: dict[str, KvEntry] = {}
        deadline = time.monotonic() + 60
        while len(infos) < 6 and time.monotonic() < deadline:
            infos = event_loop_thread.run(bus.snapshot(BUCKET_DEVICE_INFO), timeout=10)
            time.sleep(0.2)
        devices = sorted(key.removeprefix("info.") for key in infos)
        assert len(devices) == 6, (tmp_path / "master.log").read_text()[-3000:]
        assert {d.split("-")[1] for d in devices} == {"0", "1"}  # both workers run devices

        async def put_all() -> dict[str, int]:
            return {d: await bus.put(BUCKET_DESIRED_STATE, f"{d}.web", SCORE) for d in devices}

        revisions = event_loop_thread.run(put_all(), timeout=10)
        running: set[str] = set()
        deadline = time.monotonic() + 30
        while running != set(devices) and time.monotonic() < deadline:
            states = event_loop_thread.run(bus.snapshot(BUCKET_DEVICE_STATE), timeout=10)
            running = {
                s.device_id
                for s in (decode_state(e.value) for e in states.values())
                if s.phase.value == "Running" and s.desired_revision == revisions[s.device_id]
            }
            time.sleep(0.2)
        assert running == set(devices)

        assert master.wait(timeout=60) == 0, (tmp_path / "master.log").read_text()[-3000:]
        for worker in workers:
            worker.wait(timeout=30)
    finally:
        for proc in (master, *workers):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for log in logs:
            log.close()

    with (tmp_path / "dist_stats.csv").open(newline="") as f:
        rows = {f"{r['Type']} {r['Name']}": r for r in csv.DictReader(f)}
    assert int(rows["KV put heartbeat"]["Request Count"]) >= 6
    assert int(rows["KV put heartbeat"]["Failure Count"]) == 0
    assert int(rows["device desired->Running"]["Request Count"]) == 6
