"""What the rollout scenario measured, and how it is printed.

Why it exists: a rollout run's report must say, in the same words each time, how long the
operator took to halt a bad revision and roll it back (or to complete a good one), how
long the offline devices took to catch up once back, how many desired-state writes each
step cost, and how loaded the machine was.

What it must never do: I/O beyond writing ``figures.json`` where told.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(kw_only=True)
class RolloutFigures:
    devices: int
    offline: int
    bad_image: bool
    heartbeat_interval_s: float
    liveness_timeout_s: float
    registered: int = 0
    prediction: str = ""
    spawn_s: float | None = None  # locust start -> every device-info written
    revision1_s: float | None = None  # apply -> revision 1 Complete, every device running it
    offline_s: float | None = None  # told to go offline -> the operator counts them unreachable
    first_write_s: float | None = None  # score changed -> first revision-2 entry written
    batch_started_s: list[float] = field(default_factory=list)  # ... -> a batch's first one
    halt_s: float | None = None  # score changed -> .status.rollout says Halted/RolledBack
    rollback_write_s: float | None = None  # score changed -> first revision-1 entry given back
    rolled_back_s: float | None = None  # score changed -> every entry and online device at rev 1
    complete_s: float | None = None  # score changed -> Complete, every online device at rev 2
    caught_up_s: float | None = None  # told to come back -> every offline device running
    revision2_writes: int = 0  # desired-state writes of revision 2's value
    rollback_writes: int = 0  # writes giving revision 1 back
    operator_cpu_s: float | None = None
    operator_peak_rss_mb: float | None = None
    load_average: list[float] = field(default_factory=list)
    verdict: str = "FAIL"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def write(self, path: Path) -> None:
        path.write_text(self.to_json() + "\n")

    def render(self) -> str:
        def num(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.2f} s"

        image = "bad image" if self.bad_image else "good image"
        lines = [
            f"figures: rollout of revision 2 ({image}) over {self.devices} devices, "
            f"{self.offline} offline (heartbeat every {self.heartbeat_interval_s:g}s, "
            f"liveness timeout {self.liveness_timeout_s:g}s)",
            f"  predicted                    {self.prediction}",
            f"  devices registered           {self.registered} in {num(self.spawn_s)}",
            f"  revision 1 running           {num(self.revision1_s)} after apply",
            f"  offline counted unreachable  {num(self.offline_s)} after power-off "
            "(the liveness timeout, mostly)",
            f"  first revision-2 write       {num(self.first_write_s)} after the score changed",
            "  batches started              "
            + (
                ", ".join(f"{i + 1} at {t:.2f} s" for i, t in enumerate(self.batch_started_s))
                or "n/a"
            )
            + " (their first revision-2 write)",
        ]
        if self.bad_image:
            lines += [
                f"  time to halt                 {num(self.halt_s)} after the score changed "
                "(as .status.rollout shows it)",
                f"  first rollback write         {num(self.rollback_write_s)} after the score "
                "changed",
                f"  time to roll back            {num(self.rolled_back_s)} after the score "
                "changed (every entry at revision 1, every online device running it)",
            ]
        else:
            lines.append(
                f"  time to complete             {num(self.complete_s)} after the score changed "
                "(every online device running revision 2)"
            )
        lines += [
            f"  offline devices caught up    {num(self.caught_up_s)} after power-on",
            f"  desired-state writes         {self.revision2_writes} of revision 2, "
            f"{self.rollback_writes} giving revision 1 back",
            f"  operator                     CPU {num(self.operator_cpu_s)}, peak RSS "
            + (
                "n/a"
                if self.operator_peak_rss_mb is None
                else f"{self.operator_peak_rss_mb:.0f} MB"
            ),
            "  load average (1 min)         " + " -> ".join(f"{x:.1f}" for x in self.load_average),
            f"  verdict                      {self.verdict}",
        ]
        return "\n".join(lines)
