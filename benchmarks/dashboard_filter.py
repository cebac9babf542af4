"""The dashboard's devices table: what filtering and paging cost, at 10,000 and 100,000 devices.

    .venv/bin/python benchmarks/dashboard_filter.py --devices 10000 100000

For each fleet size, the read model (:class:`fleet.dashboard.view.FleetView`) is fed as
the operator feeds it (info, heartbeats, one report per device), then each query is
answered ``--repeat`` times and the median printed, in milliseconds:

* all: the first page of every device (no filter: the whole ordered list is walked to
  count the total);
* site: ``site=site-7`` (the label index narrows it to 1/50 of the fleet);
* name: a name substring (every id is looked at);
* selector+state: ``model in (pi4),site!=site-3`` and ``state=unreachable`` (index,
  then matching and the reachability rule per candidate);
* failing: devices with a failed report;
* overview: the fleet's online/unreachable counts and the Deployments;
* feed: applying the whole fleet's heartbeats once (what the operator hands over).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet.actors.operator import messages as m
from fleet.contracts import DeploymentName, DeviceId, DeviceInfo, Phase
from fleet.dashboard.hub import Hub
from fleet.devtools.simprofile import SIMULATED_INVENTORY

QUERIES = {
    "all": {},
    "site": {"selector": "site=site-7"},
    "name": {"name": "-0042"},
    "selector+state": {"selector": "model in (pi4),site!=site-3", "state": "unreachable"},
    "failing": {"state": "failing"},
}


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def fleet(n: int) -> tuple[Hub, float, m.BeatsSeen]:
    now = time.time()
    when = datetime.datetime.fromtimestamp(now, tz=datetime.UTC)
    hub = Hub(liveness_timeout=30.0)
    ids = [DeviceId(f"device-{i:06}") for i in range(n)]
    hub.feed(m.InfosSeen(infos=tuple(
        (d, DeviceInfo(device_id=d, labels={"site": f"site-{i % 50}", "model": f"pi{4 + i % 2}"},
                       inventory=SIMULATED_INVENTORY, agent_version="1", updated_at=when), 1)
        for i, d in enumerate(ids)
    )))  # fmt: skip
    beats = m.BeatsSeen(beats=tuple(
        m.Beat(device=d, at=now - (60 if i % 10 == 0 else 0), when=when, revision=1)
        for i, d in enumerate(ids)
    ))  # fmt: skip
    hub.feed(beats)
    hub.feed(m.ReportsSeen(reports=tuple(
        m.Report(device=d, deployment=DeploymentName("web"),
                 phase=Phase.FAILED if i % 100 == 0 else Phase.RUNNING,
                 desired_revision=1, message=None, updated_at=when)
        for i, d in enumerate(ids)
    )))  # fmt: skip
    hub.step(now=now)
    return hub, now, beats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    print(f"{'devices':>8} {'query':>15} {'matched':>8} {'median ms':>10}")
    for n in args.devices:
        hub, _now, beats = fleet(n)
        for name, params in QUERIES.items():
            matched = hub.devices(params)["total"]
            ms = median_ms(lambda p=params, h=hub: h.devices(p), args.repeat)  # type: ignore[misc]
            print(f"{n:>8} {name:>15} {matched:>8} {ms:>10.2f}")
        print(f"{n:>8} {'overview':>15} {'':>8} {median_ms(hub.overview, args.repeat):>10.2f}")

        def feed(b: m.BeatsSeen = beats, h: Hub = hub) -> None:
            h.feed(b)
            h.step(now=time.time())

        print(f"{n:>8} {'feed (beats)':>15} {n:>8} {median_ms(feed, 5):>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
