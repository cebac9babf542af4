"""CPU per heartbeat through a real fleet-operator: microseconds of the operator's CPU a beat.

Why it exists: at 100,000 devices beating every 10 s the operator takes 10,000 beats a
second, so what one beat costs decides whether liveness fits in a quarter of a core
(docs/benchmarks.md, "Heartbeats at 100,000 devices"). The load run gives the cores at
that size; this gives the per-beat figure on its own, so a before/after ratio does not
depend on what else the shared machine runs.

A real nats-server, the Kubernetes API emulator and a real ``fleet-operator`` process
(its CPU is its own). This process announces ``--devices`` devices (info and one beat
each), lets the operator settle, then beats every device once per ``--interval`` seconds
for ``--rounds`` rounds (what an agent writes: ``seq`` counting, ``at`` now, its
instance id and health counters) and reads the operator's CPU-seconds over those rounds
and over as long an idle stretch before them (the idle CPU, subtracted).

    .venv/bin/python benchmarks/heartbeat_path.py [--devices 10000] [--interval 2] [--rounds 20]
    .venv/bin/python benchmarks/heartbeat_path.py --devices 100000 --interval 10 --rounds 60 \
        --settle 120 --idle 120        # 100,000 devices at the default interval, 10 minutes

It also prints nats-server's CPU over the beating and both processes' RSS.

What it must never do: assert a speed (it prints figures).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from fleet.actors.agent.reporting import DeviceEntries
from fleet.contracts import BUCKET_DEVICE_HEARTBEAT, BUCKET_DEVICE_INFO, AgentHealth, DeviceId
from fleet.devtools.kube_emulator import KubeEmulator
from fleet.devtools.simprofile import SIMULATED_INVENTORY
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv_batch import KvBatchWriter
from fleet.runtime.nats.server import LocalNatsServer

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:  # noqa: PLR0915 - one scenario, read top to bottom
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between rounds")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--settle", type=float, default=30.0, help="seconds after announcing")
    ap.add_argument("--idle", type=float, default=0.0, help="idle seconds measured (0: as long "
                    "as the beating)")  # fmt: skip
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    nats = LocalNatsServer(store_dir=tmp / "js")
    nats.start()
    kube = KubeEmulator()
    kube.start()
    loop = EventLoopThread(name="bench", loop_factory=uvloop.new_event_loop)
    loop.start()
    bus = Bus(urls=[nats.url], name="bench")
    loop.run(bus.start(), timeout=30)
    loop.run(bus.wait_connected(timeout=10), timeout=15)
    loop.run(bus.ensure_buckets(), timeout=30)
    writer = KvBatchWriter(kv=bus.kv, loop_thread=loop, in_flight=1024)
    devices = [
        DeviceEntries(device_id=DeviceId(f"beat-{i:06d}"), instance_id=f"run-{i}")
        for i in range(args.devices)
    ]
    health = AgentHealth(reconciles=3, reconcile_failures=0, pulls=1, pull_failures=0,
                         drift_repairs=0, feed_rereads=0)  # fmt: skip

    def beat_all() -> None:
        items = [d.heartbeat(health=health) for d in devices]
        results = writer.put_many(BUCKET_DEVICE_HEARTBEAT, items).result(timeout=300)
        bad = sum(1 for r in results if not isinstance(r, int))
        if bad:
            print(f"  {bad} beats not written", flush=True)

    infos = [d.info(labels={"role": "edge"}, inventory=SIMULATED_INVENTORY) for d in devices]
    writer.put_many(BUCKET_DEVICE_INFO, infos).result(timeout=300)
    beat_all()
    log = (tmp / "operator.log").open("wb")
    cmd = [
        sys.executable, "-m", "fleet.cli.operator", "--metrics-address", "127.0.0.1:0",
        "--nats-url", nats.url, "--kube-url", kube.url,
        "--liveness-timeout", str(max(30.0, 3 * args.interval)),
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[1]
    )
    try:
        time.sleep(args.settle)  # initial sync, every Device resource created
        window = args.rounds * args.interval
        # The idle figure: what the operator spends with nothing beating (its ticks and
        # the Device mirror's backlog), over as long as the beating lasts.
        c0, t0 = cpu_s(proc.pid), time.monotonic()
        time.sleep(args.idle or window)
        idle = (cpu_s(proc.pid) - c0) / (time.monotonic() - t0)
        load = os.getloadavg()[0]
        assert nats.pid is not None
        n0 = cpu_s(nats.pid)
        c0, t0 = cpu_s(proc.pid), time.monotonic()
        for n in range(args.rounds):
            beat_all()
            time.sleep(max(0.0, t0 + (n + 1) * args.interval - time.monotonic()))
        time.sleep(1.0)  # the last round's tail
        elapsed = time.monotonic() - t0
        spent = cpu_s(proc.pid) - c0
        nats_spent = cpu_s(nats.pid) - n0
        beats = args.rounds * args.devices
        per_beat = (spent - idle * elapsed) / beats * 1e6
        assert proc.poll() is None, "the operator died"
        print(
            f"devices {args.devices}, {beats} beats in {elapsed:.1f} s "
            f"({beats / elapsed:,.0f}/s); operator CPU {spent:.2f} s = {spent / elapsed:.3f} "
            f"cores (idle {idle:.3f} cores) -> {per_beat:.1f} us/beat; operator RSS "
            f"{rss_mb(proc.pid):.0f} MB; nats-server CPU {nats_spent:.2f} s = "
            f"{nats_spent / elapsed:.3f} cores, RSS {rss_mb(nats.pid):.0f} MB; "
            f"load {load:.2f} -> {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        writer.close()
        loop.run(bus.close(), timeout=10)
        loop.stop()
        kube.stop()
        nats.stop()


if __name__ == "__main__":
    main()
