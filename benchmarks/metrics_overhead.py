"""What the operator's metrics cost: the same load run with its HTTP port on and off.

Issue 19's goal: the 10,000-device load-swarm run with metrics on against off, back to
back, within 5%. ``--operator-metrics off`` and ``on``, in ABBA order
(benchmarks/onoff.py). With metrics on, each run also checks ``/metrics`` against the
checker's counts (loadtest/metrics_check.py), so the figures are those of a scrape that
happened.

    .venv/bin/python benchmarks/metrics_overhead.py --devices 10000 --pairs 2
"""

from __future__ import annotations

import sys
from pathlib import Path

from onoff import Figures, abba, parse_args


def samples(figures: Figures, _workdir: Path) -> str:
    return f", /metrics samples {figures.get('metrics_samples')}"


def main() -> int:
    return abba(parse_args(__doc__.splitlines()[0]), name="metrics",
                option="--operator-metrics", more=samples)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
