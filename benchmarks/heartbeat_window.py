"""CPU and RSS of fleet-operator and nats-server over a window of a running load run.

Why it exists: the 100,000-device heartbeat figures (docs/benchmarks.md, "Heartbeats at
100,000 devices") are the operator's and nats-server's CPU-seconds over a steady window
in which the swarm only heartbeats, turned into cores (CPU-s / window), beside the load
average (the machine is shared, so the cores come from each process's own CPU time).
It finds both processes in the process tree of a running ``loadtest/run`` (by name),
waits ``--after`` seconds, then samples ``/proc`` every ``--every`` seconds for
``--window`` seconds, reads how many beats were written meanwhile (the heartbeat
bucket's last revision, before and after), and prints one JSON object of figures.

    loadtest/run --devices 100000 --deployments 1 --heartbeat-interval 10 ... &
    .venv/bin/python benchmarks/heartbeat_window.py --root $! --after 300 --window 600

What it must never do: signal or change the processes it watches (it only reads /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet.contracts import BUCKET_DEVICE_HEARTBEAT
from fleet.runtime.nats.bus import Bus
from loadtest.services import tree_pids, usage_of


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def beats_written(url: str) -> int:
    """The heartbeat bucket's last revision: every beat written so far."""

    async def read() -> int:
        bus = Bus(urls=[url], name="heartbeat-window")
        await bus.start()
        try:
            await bus.wait_connected(timeout=10)
            return await bus.kv.last_revision(BUCKET_DEVICE_HEARTBEAT, ">")
        finally:
            await bus.close()

    return asyncio.run(read())


def nats_url(pid: int) -> str:
    args = _cmdline(pid).split()
    return args[args.index("--nats-url") + 1]


def find(root: int) -> dict[str, int]:
    """The operator's and nats-server's pids under ``root``."""
    found: dict[str, int] = {}
    for pid in tree_pids(root):
        cmd = _cmdline(pid)
        if "fleet-operator" in cmd or "fleet.cli.operator" in cmd:
            found.setdefault("operator", pid)
        elif "nats-server" in cmd.split(" ", 1)[0]:
            found.setdefault("nats-server", pid)
    return found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=int, required=True, help="the loadtest/run process")
    ap.add_argument("--after", type=float, default=300.0, help="seconds before the window")
    ap.add_argument("--window", type=float, default=600.0, help="seconds measured")
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    time.sleep(args.after)
    pids = find(args.root)
    if set(pids) != {"operator", "nats-server"}:
        raise SystemExit(f"not found under {args.root}: {pids}")
    url = nats_url(pids["operator"])
    written = beats_written(url)
    first = {name: usage_of(pid) for name, pid in pids.items()}
    load_before = os.getloadavg()
    t0 = time.monotonic()
    peak_rss = dict.fromkeys(pids, 0.0)
    loads: list[float] = []
    while (elapsed := time.monotonic() - t0) < args.window:
        time.sleep(min(args.every, args.window - elapsed))
        loads.append(os.getloadavg()[0])
        for name, pid in pids.items():
            peak_rss[name] = max(peak_rss[name], _rss_mb(pid))
    last = {name: usage_of(pid) for name, pid in pids.items()}
    window = time.monotonic() - t0
    beats = beats_written(url) - written
    out: dict[str, object] = {"label": args.label, "window_s": round(window, 1)}
    out["beats"] = beats
    out["beats_per_s"] = round(beats / window)
    for name in pids:
        a, b = first[name], last[name]
        if a is None or b is None:
            raise SystemExit(f"{name} died during the window")
        cpu = b.cpu_s - a.cpu_s
        out[f"{name}_cpu_s"] = round(cpu, 1)
        out[f"{name}_cores"] = round(cpu / window, 3)
        out[f"{name}_rss_mb"] = round(peak_rss[name], 1)
        out[f"{name}_us_per_beat"] = round(cpu / max(1, beats) * 1e6, 1)
    out["load_1m_start_end"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    out["load_1m_mean"] = round(sum(loads) / max(1, len(loads)), 2)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
