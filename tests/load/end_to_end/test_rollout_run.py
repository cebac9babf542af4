"""``loadtest/run --scenario rollout`` end to end, both ways, at a scale the suite affords.

300 devices, 30 of them powered off before revision 2: with ``--bad-image`` a tenth of
the devices fail revision 2's image and the rollout must halt in its second batch and
roll back (``--seed 4`` draws three failing online devices among the 33 of batches 1-2,
where 5% allows one); without it the same run must complete. Either way the run's own
verdict (the stream history, the final entries, the offline devices caught up) is what
is asserted, with its exit code. Heartbeats every second and a liveness timeout of 8 s
keep the offline devices' wait short.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
RUN = REPO / "loadtest" / "run"
SCALE = ("--devices", "300", "--seed", "4", "--heartbeat-interval", "1", "--liveness-timeout", "8")


def rollout_run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    workdir = tmp_path / "run"
    done = subprocess.run(
        [str(RUN), "--scenario", "rollout", *SCALE, "--duration", "150", *args,
         "--workdir", str(workdir)],
        capture_output=True, text=True, timeout=170, cwd=REPO, check=False,
    )  # fmt: skip
    figures = json.loads((workdir / "figures.json").read_text())
    left = subprocess.run(
        ["pgrep", "-f", str(workdir)], capture_output=True, text=True, check=False
    )
    assert left.stdout == "", f"processes left behind:\n{left.stdout}"
    return done, figures


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_a_bad_image_halts_in_the_second_batch_rolls_back_and_the_offline_devices_catch_up(
    tmp_path: Path,
) -> None:
    done, figures = rollout_run(tmp_path, "--bad-image")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "\nPASS\n" in done.stdout
    assert "outcome: RolledBack at batch 2/3 (journaled RolledBack)" in done.stdout
    assert "33 devices given revision 2, all within the 2 batch(es) reached" in done.stdout
    assert "the 30 offline ones since they came back" in done.stdout
    assert figures["verdict"] == "PASS"
    assert figures["rolled_back_s"] is not None
    assert figures["halt_s"] is not None
    assert figures["rollback_writes"] == figures["revision2_writes"] == 33
    assert figures["caught_up_s"] is not None


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_the_same_run_with_a_good_image_completes_and_the_offline_devices_catch_up(
    tmp_path: Path,
) -> None:
    done, figures = rollout_run(tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "outcome: Complete at batch 3/3 (journaled Complete)" in done.stdout
    assert "final: all 300 devices run registry.local/load/app:2" in done.stdout
    assert figures["complete_s"] is not None
    assert figures["revision2_writes"] == 300
    assert figures["rollback_writes"] == 0
    assert len(figures["batch_started_s"]) == 3


def test_the_rollout_scenario_refuses_chance_failures_and_churn(tmp_path: Path) -> None:
    for flags in (("--failure-rate", "0.1"), ("--silent-rate", "0.1"), ("--auth",)):
        done = subprocess.run(
            [str(RUN), "--scenario", "rollout", *flags, "--workdir", str(tmp_path / "run")],
            capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
        )  # fmt: skip
        assert done.returncode == 2, flags
        assert "--scenario rollout" in done.stderr
    bad = subprocess.run(
        [str(RUN), "--bad-image"], capture_output=True, text=True, timeout=60, cwd=REPO,
        check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "--bad-image only goes with --scenario rollout" in bad.stderr
