"""``loadtest/run`` end to end: nats-server, the API emulator, fleet-operator, a locust swarm.

The 20-device / 3-Deployment / 20-second run is the acceptance check; a run whose
aggregate is made wrong on purpose (a device flipped to Failed behind a frozen operator)
must print FAIL and exit non-zero.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.budgets import UNTIL_SETTLED_RUN_S

REPO = Path(__file__).resolve().parents[3]
RUN = REPO / "loadtest" / "run"


def loadtest(tmp_path: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUN), *args, "--workdir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_twenty_devices_three_deployments_pass(tmp_path: Path) -> None:
    done = loadtest(
        tmp_path, "--devices", "20", "--deployments", "3", "--duration", "20", timeout=180
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "\nPASS\n" in done.stdout
    figures = json.loads((tmp_path / "run" / "figures.json").read_text())
    assert figures["verdict"] == "PASS"
    assert figures["registered"] == 20
    assert figures["locust"]["device desired->Running"]["count"] > 0
    assert figures["locust"]["KV put heartbeat"]["failures"] == 0
    # the operator's /metrics said what the checker counted (parsed by the client library)
    assert figures["metrics_samples"] > 50
    assert "operator /metrics            agrees with the checker" in done.stdout


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_a_device_failed_behind_a_frozen_operator_makes_the_run_fail(tmp_path: Path) -> None:
    done = loadtest(
        tmp_path,
        "--devices",
        "10",
        "--deployments",
        "1",
        "--duration",
        "12",
        "--settle",
        "3",
        "--failure-rate",
        "0",
        "--inject-fault",
        "stale-aggregate",
        timeout=180,
    )

    assert done.returncode == 1, done.stdout + done.stderr
    assert "\nFAIL\n" in done.stdout
    running = re.search(r"load-0: aggregate\.running is (\d+), devices say (\d+)", done.stdout)
    failed = re.search(r"load-0: aggregate\.failed is (\d+), devices say (\d+)", done.stdout)
    assert running is not None, done.stdout
    assert failed is not None, done.stdout
    assert int(running[2]) == int(running[1]) - 1  # the flipped device, and only it
    assert int(failed[2]) == int(failed[1]) + 1


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_until_settled_checks_once_settled_and_leaves_no_process_behind(tmp_path: Path) -> None:
    started = time.monotonic()
    done = loadtest(
        tmp_path,
        *("--devices", "10", "--deployments", "2", "--duration", "120", "--until-settled"),
        timeout=180,
    )
    took = time.monotonic() - started

    assert done.returncode == 0, done.stdout + done.stderr
    assert took < UNTIL_SETTLED_RUN_S, f"took {took:.0f}s: it waited for --duration"
    figures = json.loads((tmp_path / "run" / "figures.json").read_text())
    assert figures["settled_s"] is not None
    assert figures["locust"]["device desired->Running"]["count"] > 0  # the last statistics
    left = subprocess.run(
        ["pgrep", "-f", str(tmp_path / "run")], capture_output=True, text=True, check=False
    )
    assert left.stdout == "", f"processes left behind:\n{left.stdout}"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_three_shards_pass_each_deployment_written_by_its_own_shard_once(tmp_path: Path) -> None:
    done = loadtest(
        tmp_path,
        *("--devices", "30", "--deployments", "4", "--shards", "3", "--duration", "150"),
        "--until-settled",
        timeout=220,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\nPASS\n" in done.stdout
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("operator*.log")) == [
        "operator-1.log", "operator-2.log", "operator.log"
    ]  # fmt: skip
    assert "operator /metrics            not checked" in done.stdout


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_with_device_identity_on_every_device_has_its_own_credential_and_the_run_passes(
    tmp_path: Path,
) -> None:
    done = loadtest(
        tmp_path, "--devices", "20", "--deployments", "3", "--duration", "30",
        "--until-settled", "--auth", timeout=180,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert "\nPASS\n" in done.stdout
    assert "1 device(s) per connection" in done.stdout
    figures = json.loads((tmp_path / "run" / "figures.json").read_text())
    assert figures["registered"] == 20
    config = next((tmp_path / "run").glob("nats-server-*.conf")).read_text()
    assert "operator:" in config  # the server ran with JWT auth ...
    assert "tls" in config  # ... and TLS


def test_device_identity_needs_the_lite_client_and_a_connection_each(tmp_path: Path) -> None:
    done = loadtest(
        tmp_path, "--devices", "4", "--auth", "--devices-per-connection", "2", timeout=60
    )
    assert done.returncode == 2
    assert "--auth" in done.stderr
