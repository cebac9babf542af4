"""RSS of a real fleet-operator fed 100,000 heartbeats under made-up device ids, before,
after, and after --device-retention has passed; twice (memory must not grow for good).

    .venv/bin/python benchmarks/operator_stale_ids.py [--ids 100000] [--retention 30]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvloop

from fleet.actors.agent.reporting import DeviceEntries
from fleet.contracts import BUCKET_DEVICE_HEARTBEAT, BUCKET_DEVICE_INFO, DeviceId
from fleet.devtools.kube_emulator import KubeEmulator
from fleet.devtools.simprofile import SIMULATED_INVENTORY
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv_batch import KvBatchWriter
from fleet.runtime.nats.server import LocalNatsServer


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:  # noqa: PLR0915 - one scenario, read top to bottom
    ap = argparse.ArgumentParser()
    ap.add_argument("--ids", type=int, default=100_000)
    ap.add_argument("--retention", type=float, default=30.0)
    ap.add_argument("--liveness", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    nats = LocalNatsServer(store_dir=tmp / "js")
    nats.start()
    kube = KubeEmulator()
    kube.start()
    loop = EventLoopThread(name="bench", loop_factory=uvloop.new_event_loop)
    loop.start()
    bus = Bus(urls=[nats.url], name="bench")
    live_device = DeviceEntries(device_id=DeviceId("live"), instance_id="live-1")

    async def up() -> None:
        await bus.start()
        await bus.wait_connected(timeout=10)
        await bus.ensure_buckets()
        info = live_device.info(labels={"role": "edge"}, inventory=SIMULATED_INVENTORY)
        await bus.put(BUCKET_DEVICE_INFO, *info)

    loop.run(up(), timeout=30)
    writer = KvBatchWriter(kv=bus.kv, loop_thread=loop, in_flight=1024)
    stop = threading.Event()

    def live() -> None:  # one real device keeps the fleet awake
        while not stop.wait(1.0):
            try:
                loop.run(bus.put(BUCKET_DEVICE_HEARTBEAT, *live_device.heartbeat()), timeout=10)
            except Exception as exc:  # under the write burst: try again next second
                print("live beat failed:", exc, flush=True)

    beater = threading.Thread(target=live, daemon=True)
    beater.start()
    log = (tmp / "operator.log").open("wb")
    cmd = [
        sys.executable,
        "-m",
        "fleet.cli.operator",
        "--metrics-address",
        "127.0.0.1:0",
        "--nats-url",
        nats.url,
        "--kube-url",
        kube.url,
        "--liveness-timeout",
        str(args.liveness),
        "--device-retention",
        str(args.retention),
    ]
    print("operator:", " ".join(cmd[1:]))
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd="/work/main")

    def settle(label: str, seconds: float = 8.0) -> float:
        time.sleep(seconds)
        value = rss_mb(proc.pid)
        print(f"{label:<48} RSS {value:7.1f} MB", flush=True)
        return value

    def count() -> int:
        return len(loop.run(bus.snapshot(BUCKET_DEVICE_HEARTBEAT), timeout=120))

    try:
        time.sleep(3)
        settle("started, synced, 1 live device")
        for round_ in range(1, args.rounds + 1):
            t0 = time.monotonic()
            items = [  # one beat of one agent run per made-up id
                DeviceEntries(
                    device_id=DeviceId(f"fake-r{round_}-{i:06d}"), instance_id=f"i{i}"
                ).heartbeat()
                for i in range(args.ids)
            ]
            results = writer.put_many(BUCKET_DEVICE_HEARTBEAT, items).result(timeout=300)
            bad = [r for r in results if not isinstance(r, int)]
            print(
                f"round {round_}: wrote {len(items) - len(bad)} heartbeats under made-up ids "
                f"in {time.monotonic() - t0:.1f} s ({len(bad)} failed)"
            )
            settle(f"round {round_}: after the {args.ids} heartbeats")
            deadline = time.monotonic() + args.retention + 4 * args.liveness + 120
            while count() > 1 and time.monotonic() < deadline:
                time.sleep(1.0)
            print(f"round {round_}: keys left in device-heartbeat: {count()}")
            settle(f"round {round_}: after the retention passed")
        assert proc.poll() is None
    finally:
        stop.set()
        proc.terminate()
        proc.wait(timeout=30)
        writer.close()
        loop.run(bus.close(), timeout=10)
        loop.stop()
        kube.stop()
        nats.stop()
        print("operator log tail:")
        print("\n".join((tmp / "operator.log").read_text().splitlines()[-6:]))


if __name__ == "__main__":
    main()
