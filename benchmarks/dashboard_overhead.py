"""What an open dashboard costs the operator: the same load run with one viewer and none.

Issue 18's goal: the 10,000-device load-swarm run with one dashboard open against none,
back to back, within 5%. Runs ``loadtest/run`` (a real fleet-operator, nats-server, API
emulator and locust swarm) ``--pairs`` times each way, in ABBA order (off, on, on, off,
...) as benchmarks/metrics_overhead.py does, so that a machine that slows down or warms up
weighs on both sides. "On": ``--operator-dashboard on``, the operator serves its
dashboard and one viewer (loadtest/dashboard_viewer.py) follows ``/api/events`` and
fetches the overview and a page of devices on each change, as the page does. Prints for
each run the operator's CPU-seconds (whole run, and from the apply to the settled
aggregates), the time to settle and what the viewer did, then the medians and ratios.

    .venv/bin/python benchmarks/dashboard_overhead.py --devices 10000 --pairs 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def one_run(args: argparse.Namespace, dashboard: str, workdir: Path) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "loadtest.run", "--devices", str(args.devices),
        "--deployments", str(args.deployments), "--duration", str(args.duration),
        "--until-settled", "--failure-rate", "0.1", "--operator-dashboard", dashboard,
        "--workdir", str(workdir),
    ]  # fmt: skip
    done = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=args.duration + 900, check=False
    )
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"the run with the dashboard {dashboard} failed ({done.returncode})")
    figures: dict[str, Any] = json.loads((workdir / "figures.json").read_text())
    viewer = workdir / "dashboard.json"
    figures["viewer"] = json.loads(viewer.read_text()) if viewer.exists() else None
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10000)
    parser.add_argument("--deployments", type=int, default=3)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fleet-dashboard-overhead-"))
    results: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    print(
        f"{args.devices} devices x {args.deployments} Deployments, {args.pairs} pair(s), "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; work dirs under {root}",
        flush=True,
    )
    for pair in range(args.pairs):
        for dashboard in ("off", "on") if pair % 2 == 0 else ("on", "off"):
            figures = one_run(args, dashboard, root / f"{pair}-{dashboard}")
            results[dashboard].append(figures)
            viewer = figures["viewer"]
            seen = "" if viewer is None else (
                f", viewer {viewer['changes']} changes, {viewer['fetches']} fetches, "
                f"{viewer['errors']} errors")  # fmt: skip
            print(
                f"  run {pair + 1} dashboard {dashboard:3}: operator CPU "
                f"{figures['operator_cpu_s']:.1f} s (apply->settled "
                f"{figures['rollout_cpu_s'].get('operator', 0.0):.1f} s), settled "
                f"{figures['settled_s']:.2f} s, load {figures['load_average'][0]:.1f}{seen}",
                flush=True,
            )

    def median(dashboard: str, key: str) -> float:
        values = []
        for f in results[dashboard]:
            value = f["rollout_cpu_s"].get("operator", 0.0) if key == "window" else f[key]
            values.append(float(value))
        return statistics.median(values)

    print("medians (on / off):")
    for key, label in (("operator_cpu_s", "operator CPU, whole run"),
                       ("window", "operator CPU, apply->settled"),
                       ("settled_s", "time to settle")):  # fmt: skip
        on, off = median("on", key), median("off", key)
        print(f"  {label:30} on {on:8.2f}  off {off:8.2f}  ratio {on / max(off, 1e-9):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
