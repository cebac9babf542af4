"""How long ``fleetctl describe device`` and ``fleetctl logs`` take to be answered by a real agent.

Run: .venv/bin/python benchmarks/ondemand_latency.py [--rounds 15]

Brings up a nats-server on a free port, the private podman world, and one in-process
agent (``AgentApp`` on the podman adapter) running a container that printed 2,000
lines; then asks as fleetctl does (``fleet.runtime.nats.device_ask``): describe, the
tail of 100 and of 1,000 lines, and how long a line printed by a followed container
takes to arrive. Rounds stay within the agent's rate limit (5 a second per requester).
Prints one line per figure (median and max over the rounds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import msgspec
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet.actors.agent.app import AgentApp
from fleet.actors.agent.config import AgentConfig
from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeviceId,
    LogsRequest,
    Phase,
    decode_state,
    desired_state_key,
    device_state_key,
)
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats import device_ask
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.server import LocalNatsServer
from fleet.runtime.nats.transport import Transport
from fleet.runtime.podman.adapter import PodmanRuntime
from tests.fixtures.podman import podman_world

DEVICE = DeviceId("bench-ondemand")
APP = DeploymentName("app")
SCRIPT = ("i=0; while [ $i -lt 2000 ]; do echo \"line $i: some text a log line has\"; "
          "i=$((i+1)); done; trap 'exit 0' TERM; "
          "while true; do echo \"now $(cat /proc/uptime)\"; sleep 0.5; done")  # fmt: skip


def figure(name: str, samples: list[float], extra: str = "") -> None:
    ms = sorted(s * 1000 for s in samples)
    print(f"{name}: median {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms "
          f"({len(ms)} rounds){extra}")  # fmt: skip


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def wait_running(loop: EventLoopThread, bus: Bus) -> None:
    deadline = time.monotonic() + 120
    while True:
        entry = loop.run(bus.get(BUCKET_DEVICE_STATE, device_state_key(DEVICE, APP)), timeout=10)
        if entry is not None and decode_state(entry.value).phase is Phase.RUNNING:
            return
        assert time.monotonic() < deadline, "never Running"
        time.sleep(0.2)


def measure(loop: EventLoopThread, transport: Transport, rounds: int) -> None:
    def timed(make: Callable[[], Coroutine[Any, Any, Any]]) -> float:
        started = time.perf_counter()
        loop.run(make(), timeout=60)
        elapsed = time.perf_counter() - started
        time.sleep(0.25)  # within the rate limit
        return elapsed

    def describe() -> Coroutine[Any, Any, Any]:
        return device_ask.describe(transport, DEVICE, timeout=10)

    figure("describe", [timed(describe) for _ in range(rounds)])
    for tail in (100, 1000):
        sizes: list[int] = []

        async def tail_of(n: int = tail, sizes: list[int] = sizes) -> None:
            request = LogsRequest(deployment=APP, tail=n)
            sizes.append(len([c async for c in device_ask.logs(transport, DEVICE, request,
                                                               timeout=10)]))  # fmt: skip

        figure(f"logs --tail {tail}", [timed(tail_of) for _ in range(rounds)],
               f", {max(sizes)} chunk(s)")  # fmt: skip
    lags: list[float] = []

    async def follow() -> None:
        request = LogsRequest(deployment=APP, tail=0, follow=True)
        stream = device_ask.logs(transport, DEVICE, request, timeout=10)
        async for chunk in stream:
            now = uptime()
            lags.extend(now - float(line.split()[1]) for line in chunk.lines
                        if line.startswith("now "))  # fmt: skip
            if len(lags) >= rounds:
                break
        await stream.aclose()

    loop.run(follow(), timeout=120)
    figure("follow: printed -> arrived (ticks of 0.25 s included)", lags)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as tmp, podman_world() as podman:
        nats = LocalNatsServer(store_dir=Path(tmp) / "js")
        nats.start()
        loop = EventLoopThread(name="bench", loop_factory=uvloop.new_event_loop)
        loop.start()
        bus = Bus(urls=[nats.url], name="bench")
        app = None
        try:
            loop.run(bus.start(), timeout=10)
            loop.run(bus.wait_connected(timeout=10), timeout=15)
            loop.run(bus.ensure_buckets(), timeout=15)
            config = AgentConfig(
                device_id=DEVICE, labels={"site": "bench"}, nats_urls=[nats.url],
                podman_socket=podman.socket_url, heartbeat_interval_s=1.0,
                state_dir=Path(tmp) / "state", resync_interval_s=5.0, stop_timeout_s=2.0,
            )  # fmt: skip
            app = AgentApp(config, runtime=PodmanRuntime(url=podman.socket_url),
                           loop_factory=uvloop.new_event_loop)  # fmt: skip
            app.start()
            container = {"name": "app", "image": podman.image, "command": ["sh", "-c", SCRIPT]}
            value = msgspec.json.encode({"type": "podman", "containers": [container]})
            loop.run(bus.put(BUCKET_DESIRED_STATE, desired_state_key(DEVICE, APP), value),
                     timeout=10)  # fmt: skip
            wait_running(loop, bus)
            time.sleep(2)  # the 2,000 lines are out
            measure(loop, bus.transport, rounds)
        finally:
            if app is not None:
                app.stop()
            loop.run(bus.close(), timeout=10)
            loop.stop()
            nats.stop()


if __name__ == "__main__":
    main()
