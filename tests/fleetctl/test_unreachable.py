"""fleetctl says which address it could not reach, exits 3, and does not hang."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from fleet.cli.fleetctl.main import main
from fleet.runtime.nats.server import free_port
from tests.budgets import UNREACHABLE_REPORTED_S
from tests.fixtures.kube import KubeCluster


def test_nats_unreachable(capsys: pytest.CaptureFixture[str], kube: KubeCluster) -> None:
    port = free_port()
    started = time.monotonic()
    code = main(["devices", "--nats-url", f"nats://127.0.0.1:{port}", "--connect-timeout", "1"])
    assert code == 3
    assert time.monotonic() - started < UNREACHABLE_REPORTED_S
    err = capsys.readouterr().err
    assert f"cannot reach NATS at nats://127.0.0.1:{port} within 1 s" in err


def test_kubernetes_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    code = main(["deployments", "--kube-url", f"http://127.0.0.1:{port}"])
    assert code == 3
    err = capsys.readouterr().err
    assert f"cannot reach the Kubernetes API at http://127.0.0.1:{port}" in err
    assert "connection refused" in err


def test_the_console_script_exits_non_zero_with_one_line() -> None:
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "fleet.cli.fleetctl.main", "status", "web",
         "--kube-url", f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 3
    assert result.stderr.strip().startswith("fleetctl: cannot reach the Kubernetes API")
    assert len(result.stderr.strip().splitlines()) == 1
