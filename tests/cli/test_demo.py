"""The README's first command runs the main job on embedded defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(60)
def test_fleet_demo_brings_up_the_bus_and_shows_the_buckets(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fleet.cli.demo", "--once", "--store-dir", str(tmp_path / "js")],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "JetStream at nats://127.0.0.1:" in lines[0]
    buckets = {line.split()[0]: line.split()[1:] for line in lines[2:6]}
    assert buckets == {
        "desired-state": ["1", "0", "yes"],
        "device-info": ["1", "0", "yes"],
        "device-state": ["1", "0", "yes"],
        "device-heartbeat": ["1", "0", "yes"],
    }
