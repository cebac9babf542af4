"""A wrong config stops fleet-agent at start: exit 2, one line naming file, key, reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fleet.actors.agent.config import load_config
from fleet.errors import ConfigError

GOOD = """
device_id = "pi-01"
[labels]
site = "lab"
[nats]
urls = ["nats://127.0.0.1:4222"]
[podman]
socket = "unix:///run/podman/podman.sock"
[agent]
heartbeat_interval_s = 10
state_dir = "/var/lib/fleet-agent"
"""


def run_agent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet.cli.agent", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


def test_the_issue_example_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(GOOD)
    config = load_config(path)
    assert config.device_id == "pi-01"
    assert config.labels == {"site": "lab"}
    assert config.nats_urls == ["nats://127.0.0.1:4222"]
    assert config.podman_socket == "unix:///run/podman/podman.sock"
    assert config.heartbeat_interval_s == 10
    assert config.state_dir == Path("/var/lib/fleet-agent")


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (('device_id = "pi-01"', 'device_id = "pi.01"'), "device_id", "invalid device id"),
        (('device_id = "pi-01"', ""), "device_id", "missing"),
        (('urls = ["nats://127.0.0.1:4222"]', "urls = []"), "nats.urls", "non-empty list"),
        (
            ("heartbeat_interval_s = 10", "heartbeat_interval_s = -1"),
            "agent.heartbeat_interval_s",
            "positive number",
        ),
        (('site = "lab"', 'site = "not ok!"'), "labels", "site"),
        (('socket = "unix:///run/podman/podman.sock"', "socket = 3"), "podman.socket", "URL"),
        (("[agent]", "[agent"), "", "not valid TOML"),
        (("[agent]", '[metrics]\naddress = "nowhere"\n[agent]'), "metrics.address", "HOST:PORT"),
        (
            ("[agent]", '[metrics]\naddress = "127.0.0.1:99999"\n[agent]'),
            "metrics.address",
            "0..65535",
        ),
        (("[agent]", "[metrics]\nport = 9101\n[agent]"), "metrics.port", "unknown key"),
    ],
)
def test_invalid_config_exits_2_naming_file_key_and_reason(
    tmp_path: Path, change: tuple[str, str], key: str, reason: str
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ConfigError, match=reason):
        load_config(path)
    proc = run_agent("--config", str(path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert str(path) in line
    assert f"`{key}`" in line or not key
    assert reason in line


def test_missing_file_and_missing_setting_exit_2(tmp_path: Path) -> None:
    proc = run_agent("--config", str(tmp_path / "nope.toml"))
    assert proc.returncode == 2
    assert "nope.toml: config file not found" in proc.stderr
    proc = run_agent(env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert "FLEET_AGENT_CONFIG" in proc.stderr
    assert "Traceback" not in proc.stderr
