"""What one device's desired-state reads cost nats-server, by the size of the bucket.

The agent's feed (fleet/runtime/nats/desired_feed.py) reads with two kinds of direct get:
an exact one per live message (``$JS.API.DIRECT.GET.KV_desired-state.$KV.desired-state.
<device>.<deployment>``) and, at every snapshot (start, reconnect, every
``resync_interval``), a wildcard last-by-subject (``Bus.last_revision``:
``{"last_by_subj": "$KV.desired-state.<device>.*"}``). This measures nats-server's CPU
per request of each kind with ``--devices`` x 3 entries in the bucket, requests sent
one at a time from one connection (so the figure is the server's, not queueing).

    .venv/bin/python benchmarks/feed_server_cost.py --devices 10000 --requests 2000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    DeploymentName,
    DeviceId,
    desired_state_key,
    desired_state_key_filter,
)
from fleet.runtime.nats import subjects
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv_publish import KvPublisher
from fleet.runtime.nats.server import LocalNatsServer


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace) -> None:
    server = LocalNatsServer(store_dir=Path(tempfile.mkdtemp(prefix="feed-cost-")))
    server.start()
    assert server._proc is not None
    pid = server._proc.pid
    bus = Bus(urls=[server.url], name="feed-cost")
    try:
        await bus.start()
        await bus.wait_connected(timeout=10)
        await bus.ensure_buckets()
        publisher = KvPublisher(bus.kv, in_flight=1024, timeout=60.0)
        items = [
            (
                desired_state_key(DeviceId(f"dev-{i:06d}"), DeploymentName(f"load-{d}")),
                b'{"type":"podman","containers":[]}',
            )
            for i in range(args.devices)
            for d in range(3)
        ]
        t = time.monotonic()
        await publisher.write_many(BUCKET_DESIRED_STATE, items)
        print(f"{len(items)} entries written in {time.monotonic() - t:.1f} s")
        await publisher.close()
        step = max(1, args.devices // args.requests)
        devices = [f"dev-{i:06d}" for i in range(0, args.devices, step)][: args.requests]

        async def wildcard(dev: str) -> None:
            await bus.last_revision(BUCKET_DESIRED_STATE, desired_state_key_filter(DeviceId(dev)))

        async def exact(dev: str) -> None:
            key = desired_state_key(DeviceId(dev), DeploymentName("load-1"))
            await bus.transport.request(
                subjects.direct_get(BUCKET_DESIRED_STATE, key), b"", timeout=30
            )

        for name, fn in (("exact get", exact), ("wildcard last_by_subj", wildcard)):
            cpu0, t0 = cpu_of(pid), time.monotonic()
            for dev in devices:
                await fn(dev)
            wall, cpu = time.monotonic() - t0, cpu_of(pid) - cpu0
            n = len(devices)
            print(
                f"{name:<22} {n} requests: {wall / n * 1e6:8.0f} us each (wall), "
                f"nats-server {cpu / n * 1e6:8.0f} CPU-us each"
            )
        print(f"load average {os.getloadavg()[0]:.1f}")
    finally:
        await bus.close()
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2_000)
    args = parser.parse_args()
    import uvloop

    uvloop.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
