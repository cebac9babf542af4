"""One load run with a feature on against off, back to back: the runner the overhead
benchmarks share (benchmarks/metrics_overhead.py, benchmarks/dashboard_overhead.py).

Runs ``loadtest/run`` (a real fleet-operator, nats-server, API emulator and locust swarm)
``--pairs`` times each way, in ABBA order (off, on, on, off, ...) so that a machine that
slows down or warms up over time weighs on both sides, prints one line per run, then the
medians and the ratios on/off of the operator's CPU-seconds (whole run, and from the apply
to the settled aggregates) and of the time to settle.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
Figures = dict[str, Any]


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--devices", type=int, default=10000)
    parser.add_argument("--deployments", type=int, default=3)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--pairs", type=int, default=2)
    return parser.parse_args()


def one_run(args: argparse.Namespace, option: str, value: str, workdir: Path) -> Figures:
    """One ``loadtest/run`` with ``option value``; its figures.json."""
    argv = [
        sys.executable, "-m", "loadtest.run", "--devices", str(args.devices),
        "--deployments", str(args.deployments), "--duration", str(args.duration),
        "--until-settled", "--failure-rate", "0.1", option, value, "--workdir", str(workdir),
    ]  # fmt: skip
    done = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=args.duration + 900, check=False
    )
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"the run with {option} {value} failed ({done.returncode})")
    figures: Figures = json.loads((workdir / "figures.json").read_text())
    return figures


def abba(
    args: argparse.Namespace,
    *,
    name: str,
    option: str,
    more: Callable[[Figures, Path], str] = lambda _f, _w: "",
) -> int:
    """Run ``option`` off and on (``name`` in the lines printed); ``more`` adds to a run's
    line what that feature did (given its figures and work dir)."""
    root = Path(tempfile.mkdtemp(prefix=f"fleet-{name}-overhead-"))
    results: dict[str, list[Figures]] = {"off": [], "on": []}
    print(
        f"{args.devices} devices x {args.deployments} Deployments, {args.pairs} pair(s), "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; work dirs under {root}",
        flush=True,
    )
    for pair in range(args.pairs):
        # ABBA: off-on, then on-off, so neither side always runs on a warmer machine
        for value in ("off", "on") if pair % 2 == 0 else ("on", "off"):
            workdir = root / f"{pair}-{value}"
            figures = one_run(args, option, value, workdir)
            results[value].append(figures)
            print(
                f"  run {pair + 1} {name} {value:3}: operator CPU "
                f"{figures['operator_cpu_s']:.1f} s (apply->settled "
                f"{figures['rollout_cpu_s'].get('operator', 0.0):.1f} s), settled "
                f"{figures['settled_s']:.2f} s, load {figures['load_average'][0]:.1f}"
                f"{more(figures, workdir)}",
                flush=True,
            )

    def median(value: str, key: str) -> float:
        return statistics.median(
            float(f["rollout_cpu_s"].get("operator", 0.0) if key == "window" else f[key])
            for f in results[value]
        )

    print("medians (on / off):")
    for key, label in (("operator_cpu_s", "operator CPU, whole run"),
                       ("window", "operator CPU, apply->settled"),
                       ("settled_s", "time to settle")):  # fmt: skip
        on, off = median("on", key), median("off", key)
        print(f"  {label:30} on {on:8.2f}  off {off:8.2f}  ratio {on / max(off, 1e-9):.3f}")
    return 0
