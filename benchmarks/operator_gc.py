"""Run fleet-operator and print, at exit, its garbage collections by generation.

A wrapper for benchmarks/operator_scale.py (its ``FLEET_BENCH_OPERATOR``), measuring how
long the collector held the GIL during a run. ``GC_THRESHOLD=700,10,10`` sets other
thresholds after the operator's own (``fleet.cli.operator.GC_THRESHOLDS``), to compare:

    FLEET_BENCH_OPERATOR=benchmarks/operator_gc.py .venv/bin/python \\
        benchmarks/operator_scale.py --devices 100000 --deployments 3 --settle 25 --timeout 400
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet.cli import operator

_held = {generation: [0.0, 0] for generation in range(3)}  # seconds, collections
_started = [0.0]


def _timed(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        held = _held[info["generation"]]
        held[0] += time.perf_counter() - _started[0]
        held[1] += 1


def _report() -> None:
    parts = ", ".join(f"gen{g} {n} x {s:.2f} s" for g, (s, n) in _held.items())
    print(f"GC by generation: {parts}; thresholds {gc.get_threshold()}", file=sys.stderr)


if __name__ == "__main__":
    gc.callbacks.append(_timed)
    atexit.register(_report)
    if os.environ.get("GC_THRESHOLD"):
        gen0, gen1, gen2 = (int(x) for x in os.environ["GC_THRESHOLD"].split(","))
        operator.GC_THRESHOLDS = (gen0, gen1, gen2)  # what main() then sets
    sys.exit(operator.main(sys.argv[1:]))
