"""What a load run measured, and how it is printed.

Why it exists: the run's report must say, with the same words each time, how long the
operator took from the Deployments' creation to every desired entry written and to every
aggregate settled, at what rates, at what cost (operator and nats-server peak RSS,
CPU-seconds), what locust measured at the devices, and how loaded the machine was
(other work shares it; the load average is part of every figure).

What it must never do: do I/O beyond reading the run's own files (locust's CSV).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(kw_only=True)
class Figures:
    devices: int
    deployments: int
    processes: int
    devices_per_connection: int
    heartbeat_interval_s: float
    registered: int = 0
    spawn_s: float | None = None  # locust start -> every device-info written
    desired_s: float | None = None  # Deployments created -> every desired entry written
    settled_s: float | None = None  # Deployments created -> no aggregate pending
    last_report_s: float | None = None  # Deployments created -> last device report seen
    desired_writes_per_s: float | None = None
    reports_per_s: float | None = None
    operator_peak_rss_mb: float | None = None
    operator_cpu_s: float | None = None
    nats_peak_rss_mb: float | None = None
    nats_cpu_s: float | None = None
    swarm_cpu_s: float | None = None  # every locust process together
    swarm_peak_rss_mb: float | None = None  # the largest locust process
    # CPU-seconds each process spent from the apply to the settled aggregates: on a
    # 2-core machine their sum cannot exceed 2 x settled_s, which is what bounds it.
    rollout_cpu_s: dict[str, float] = field(default_factory=dict)
    load_average: list[float] = field(default_factory=list)  # at start, end (1-minute)
    locust: dict[str, dict[str, Any]] = field(default_factory=dict)
    verdict: str = "FAIL"
    metrics_samples: int | None = None  # samples in the operator's /metrics, checked

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def render(self) -> str:
        def num(value: float | None, unit: str = "", digits: int = 2) -> str:
            return "n/a" if value is None else f"{value:.{digits}f}{unit}"

        lines = [
            f"figures: {self.devices} devices x {self.deployments} Deployments "
            f"({self.processes} locust process(es), {self.devices_per_connection} device(s) per "
            f"connection, heartbeat every {self.heartbeat_interval_s:g}s)",
            f"  devices registered           {self.registered} in {num(self.spawn_s, ' s')}",
            f"  desired entries all written  {num(self.desired_s, ' s')} after apply "
            f"({num(self.desired_writes_per_s, '/s', 0)})",
            f"  aggregates settled           {num(self.settled_s, ' s')} after apply "
            f"(device reports {num(self.reports_per_s, '/s', 0)})",
            f"  last device report           {num(self.last_report_s, ' s')} after apply "
            "(settled minus this: the operator's own lag, one poll of 0.1 s + I/O)",
            f"  operator                     peak RSS {num(self.operator_peak_rss_mb, ' MB', 0)}, "
            f"CPU {num(self.operator_cpu_s, ' s', 1)}",
            f"  nats-server                  peak RSS {num(self.nats_peak_rss_mb, ' MB', 0)}, "
            f"CPU {num(self.nats_cpu_s, ' s', 1)}",
            f"  swarm (locust)               peak RSS {num(self.swarm_peak_rss_mb, ' MB', 0)}, "
            f"CPU {num(self.swarm_cpu_s, ' s', 1)}",
            "  CPU from apply to settled    "
            + (
                ", ".join(f"{k} {v:.1f} s" for k, v in self.rollout_cpu_s.items())
                + f" (sum {sum(self.rollout_cpu_s.values()):.1f} s"
                + (f" of at most {2 * self.settled_s:.1f} s on 2 cores)" if self.settled_s else ")")
                if self.rollout_cpu_s
                else "n/a"
            ),
            "  load average (1 min)         " + " -> ".join(f"{x:.1f}" for x in self.load_average),
            "  operator /metrics            "
            + (
                f"agrees with the checker ({self.metrics_samples} samples parsed)"
                if self.metrics_samples is not None
                else "not checked"
            ),
        ]
        for name, row in sorted(self.locust.items()):
            lines.append(
                f"  locust {name:<22} n={row['count']} fail={row['failures']} "
                f"median={row['median_ms']} ms p95={row['p95_ms']} ms max={row['max_ms']} ms"
            )
        lines.append(f"  verdict                      {self.verdict}")
        return "\n".join(lines)


def locust_rows(stats_csv: Path) -> dict[str, dict[str, Any]]:
    """Per-operation rows of locust's ``*_stats.csv`` (empty if the file is missing)."""
    if not stats_csv.exists():
        return {}
    out: dict[str, dict[str, Any]] = {}
    with stats_csv.open(newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("Type"):
                continue  # the "Aggregated" line
            out[f"{row['Type']} {row['Name']}"] = {
                "count": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "median_ms": row["Median Response Time"],
                "p95_ms": row["95%"],
                "max_ms": round(float(row["Max Response Time"]), 1),
            }
    return out


def write(figures: Figures, path: Path) -> None:
    path.write_text(figures.to_json() + "\n")
