"""What the operator's metrics cost: the same load run with its HTTP port on and off.

Issue 19's goal: the 10,000-device load-swarm run with metrics on against off, back to
back, within 5%. Runs ``loadtest/run`` (a real fleet-operator, nats-server, API emulator
and locust swarm) ``--pairs`` times each way, in ABBA order (off, on, on, off, ...) so that a
machine that slows down or warms up over time weighs on both sides, and prints for each run the
operator's CPU-seconds, its CPU-seconds from the apply to the settled aggregates, and the
time to settle, then the medians and the ratios on/off. With metrics on, each run also
checks ``/metrics`` against the checker's counts (loadtest/metrics_check.py), so the
figures are those of a scrape that happened.

    .venv/bin/python benchmarks/metrics_overhead.py --devices 10000 --pairs 2
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


def one_run(args: argparse.Namespace, metrics: str, workdir: Path) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "loadtest.run", "--devices", str(args.devices),
        "--deployments", str(args.deployments), "--duration", str(args.duration),
        "--until-settled", "--failure-rate", "0.1", "--operator-metrics", metrics,
        "--workdir", str(workdir),
    ]  # fmt: skip
    done = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=args.duration + 900, check=False
    )
    figures: dict[str, Any] = json.loads((workdir / "figures.json").read_text())
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"the run with metrics {metrics} failed ({done.returncode})")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10000)
    parser.add_argument("--deployments", type=int, default=3)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fleet-metrics-overhead-"))
    results: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    print(
        f"{args.devices} devices x {args.deployments} Deployments, {args.pairs} pair(s), "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; work dirs under {root}"
    )
    for pair in range(args.pairs):
        # ABBA: off-on, then on-off, so neither side always runs on a warmer machine
        for metrics in ("off", "on") if pair % 2 == 0 else ("on", "off"):
            figures = one_run(args, metrics, root / f"{pair}-{metrics}")
            results[metrics].append(figures)
            cpu = figures["operator_cpu_s"]
            print(
                f"  run {pair + 1} metrics {metrics:3}: operator CPU {cpu:.1f}"
                f" s (apply->settled {figures['rollout_cpu_s'].get('operator', 0.0):.1f} s), "
                f"settled {figures['settled_s']:.2f} s, /metrics samples "
                f"{figures.get('metrics_samples')}",
                flush=True,
            )

    def median(metrics: str, key: str) -> float:
        values = []
        for f in results[metrics]:
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
