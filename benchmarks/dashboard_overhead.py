"""What an open dashboard costs the operator: the same load run with one viewer and none.

Issue 18's goal: the 10,000-device load-swarm run with one dashboard open against none,
back to back, within 5%. ``--operator-dashboard off`` and ``on``, in ABBA order
(benchmarks/onoff.py). "On": the operator serves its dashboard and one viewer
(loadtest/dashboard_viewer.py) follows ``/api/events`` and fetches the overview and a
page of devices on each change, as the page does; each run's line says what it did.

    .venv/bin/python benchmarks/dashboard_overhead.py --devices 10000 --pairs 2
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from onoff import Figures, abba, parse_args


def viewer(_figures: Figures, workdir: Path) -> str:
    path = workdir / "dashboard.json"
    if not path.exists():
        return ""
    seen = json.loads(path.read_text())
    return f", viewer {seen['changes']} changes, {seen['fetches']} fetches, {seen['errors']} errors"


def main() -> int:
    return abba(parse_args(__doc__.splitlines()[0]), name="dashboard",
                option="--operator-dashboard", more=viewer)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
