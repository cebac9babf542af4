"""Shipping the agent: ``deploy/agent/install.sh`` into a throwaway root, and its systemd unit.

The install runs for real (a venv, pip, the link, the config, the unit) under ``--prefix``;
only the steps that change the running system (useradd, loginctl, systemctl) are skipped
and listed. The package comes from a wheel of this checkout, installed without its
dependencies (``PIP_NO_DEPS``) so the test stays fast and offline after the build.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

import fleet
from fleet.actors.agent.config import load_config, parse_config
from tests.deploy.conftest import DEPLOY, REPO

INSTALL = DEPLOY / "agent" / "install.sh"
UNIT = DEPLOY / "agent" / "fleet-agent.service"
SOCKET = "unix:///run/user/990/podman/podman.sock"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this checkout (built from a copy, so no build/ lands in the repo)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "fleet", src / "fleet", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(src)],
        check=True,
        timeout=110,
    )
    (built,) = out.glob("fleet-*.whl")
    return built


def run_install(prefix: Path, wheel: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIP_NO_DEPS": "1", "PIP_NO_INDEX": "1"}
    return subprocess.run(
        [
            "bash",
            str(INSTALL),
            "--prefix",
            str(prefix),
            "--source",
            str(wheel),
            "--python",
            sys.executable,
            "--podman-socket",
            SOCKET,
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


def snapshot(root: Path) -> dict[str, Any]:
    """Every path under ``root``: its type, mode, link target or content hash."""
    out: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts:
            continue
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            out[rel] = ("dir", path.stat().st_mode)
        else:
            out[rel] = ("file", path.stat().st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


FIRST = (
    "--device-id",
    "pi-01",
    "--label",
    "site=lab",
    "--label",
    "example.com/tier=edge",
    "--nats-url",
    "nats://10.0.0.1:4222",
    "--nats-url",
    "nats://10.0.0.2:4222",
    "--no-auth",
)


@pytest.fixture(scope="module")
def installed(
    wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any], dict[str, Any], str]:
    """Installed twice into one prefix (the second time with other arguments)."""
    prefix = tmp_path_factory.mktemp("root")
    first = run_install(prefix, wheel, *FIRST)
    assert first.returncode == 0, first.stderr + first.stdout
    before = snapshot(prefix)
    second = run_install(
        prefix, wheel, "--device-id", "pi-99", "--nats-url", "nats://x:4222", "--no-auth"
    )
    assert second.returncode == 0, second.stderr + second.stdout
    return prefix, before, snapshot(prefix), second.stdout


@pytest.mark.timeout(240)
def test_installing_twice_changes_nothing_and_keeps_the_config(
    installed: tuple[Path, dict[str, Any], dict[str, Any], str],
) -> None:
    _prefix, before, after, second_output = installed
    assert after == before
    assert "kept the existing" in second_output
    assert "--force" in second_output


def test_the_venv_holds_the_agent_and_the_link_points_at_it(
    installed: tuple[Path, dict[str, Any], dict[str, Any], str],
) -> None:
    prefix = installed[0]
    script = prefix / "opt/fleet-agent/venv/bin/fleet-agent"
    link = prefix / "usr/local/bin/fleet-agent"
    assert os.access(script, os.X_OK)
    assert link.is_symlink()
    assert link.resolve() == script.resolve()
    version = subprocess.run(
        [
            str(prefix / "opt/fleet-agent/venv/bin/python"),
            "-c",
            "import fleet; print(fleet.__version__)",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    assert version == fleet.__version__


def test_the_config_has_the_arguments_and_the_agent_accepts_it(
    installed: tuple[Path, dict[str, Any], dict[str, Any], str],
) -> None:
    path = installed[0] / "etc/fleet-agent/config.toml"
    doc = tomllib.loads(path.read_text())
    assert doc["device_id"] == "pi-01"
    assert doc["labels"] == {"site": "lab", "example.com/tier": "edge"}
    assert doc["nats"]["urls"] == ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]
    assert doc["podman"]["socket"] == SOCKET
    assert doc["agent"]["state_dir"] == "/var/lib/fleet-agent/state"
    config = load_config(path)  # the agent's own parser: what fleet-agent reads at start
    assert config.device_id == "pi-01"
    assert config.heartbeat_interval_s == 10.0
    assert (path.stat().st_mode & 0o777) == 0o640


def test_the_unit_and_the_skipped_system_steps_are_recorded(
    installed: tuple[Path, dict[str, Any], dict[str, Any], str],
) -> None:
    prefix = installed[0]
    assert (prefix / "etc/systemd/system/fleet-agent.service").read_bytes() == UNIT.read_bytes()
    assert (prefix / "var/lib/fleet-agent/state").is_dir()
    wants = prefix / "var/lib/fleet-agent/.config/systemd/user/sockets.target.wants/podman.socket"
    assert os.readlink(wants) == "/usr/lib/systemd/user/podman.socket"
    skipped = (prefix / "var/lib/fleet-agent/install-skipped.txt").read_text()
    for step in ("useradd --system", "loginctl enable-linger fleet-agent", "systemctl enable"):
        assert step in skipped


@pytest.mark.timeout(180)
def test_force_rewrites_the_config(wheel: Path, tmp_path: Path) -> None:
    assert run_install(tmp_path, wheel, *FIRST).returncode == 0
    result = run_install(
        tmp_path, wheel, "--force", "--device-id", "pi-02", "--nats-url", "nats://y:4222",
        "--no-auth",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = load_config(tmp_path / "etc/fleet-agent/config.toml")
    assert (config.device_id, config.labels, config.nats_urls) == ("pi-02", {}, ["nats://y:4222"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--device-id", "pi-01", "--label", "site", "--nats-url", "nats://x:4222"),
            "--label 'site' must be KEY=VALUE",
        ),
        (("--device-id", "pi-01"), "at least one --nats-url"),
        (("--nats-url", "nats://x:4222", "--bogus"), "unknown argument '--bogus'"),
    ],
    ids=["label-without-value", "no-nats-url", "unknown-flag"],
)
def test_bad_arguments_are_named_and_write_no_config(
    wheel: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = run_install(tmp_path, wheel, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "etc/fleet-agent/config.toml").exists()


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart exists: point it at a stand-in executable.
    stand_in = tmp_path / "fleet-agent"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "fleet-agent.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/fleet-agent", str(stand_in)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # unknown keys are only warnings


def test_the_unit_runs_the_agent_as_its_user_with_its_config() -> None:
    lines = {
        line.partition("=")[0]: line.partition("=")[2]
        for line in UNIT.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert lines["ExecStart"] == "/usr/local/bin/fleet-agent"
    assert lines["User"] == "fleet-agent"
    assert lines["Environment"] == "FLEET_AGENT_CONFIG=/etc/fleet-agent/config.toml"
    assert lines["Restart"] == "on-failure"


# -- device identity: TLS to NATS, enrollment with a bootstrap token ---------------------

TOKEN = "abc123.0123456789abcdefghij"


@pytest.fixture
def identity_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fleet's bootstrap.creds (as ``fleet-operator --init-auth`` makes it), a CA
    file and a token file."""
    from fleet.runtime.nats.authority_files import load_or_create

    directory = tmp_path_factory.mktemp("fleet-authority")
    load_or_create(directory / "auth")
    ca = directory / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n")
    token = directory / "token.txt"
    token.write_text(f"{TOKEN}\n")
    return {"creds": directory / "auth" / "bootstrap.creds", "ca": ca, "token": token}


@pytest.mark.timeout(180)
def test_enrollment_and_tls_go_into_the_config_and_the_files_beside_it(
    wheel: Path, tmp_path: Path, identity_files: dict[str, Path]
) -> None:
    result = run_install(
        tmp_path, wheel, "--device-id", "pi-07", "--label", "site=lab",
        "--nats-url", "tls://nats.example.com:4222",
        "--nats-ca", str(identity_files["ca"]),
        "--bootstrap-creds", str(identity_files["creds"]),
        "--enrollment-token-file", str(identity_files["token"]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert TOKEN not in result.stdout + result.stderr  # a secret is never printed
    assert "without credentials" not in result.stdout
    etc = tmp_path / "etc/fleet-agent"
    doc = tomllib.loads((etc / "config.toml").read_text())
    assert doc["nats"] == {
        "urls": ["tls://nats.example.com:4222"], "ca": "/etc/fleet-agent/nats-ca.pem",
    }  # fmt: skip
    assert doc["enrollment"] == {
        "bootstrap_credentials": "/etc/fleet-agent/bootstrap.creds", "token": TOKEN,
    }  # fmt: skip
    installed = {"nats-ca.pem": ("ca", 0o644), "bootstrap.creds": ("creds", 0o640)}
    for name, (source, mode) in installed.items():
        assert (etc / name).read_bytes() == identity_files[source].read_bytes()
        assert (etc / name).stat().st_mode & 0o777 == mode
    # the agent's own parser, with the files where the prefix put them
    text = (etc / "config.toml").read_text().replace('"/etc/fleet-agent/', f'"{etc}/')
    config = parse_config(text, where="config.toml")
    assert config.nats_ca == etc / "nats-ca.pem"
    assert config.enrollment is not None
    assert config.enrollment.token == TOKEN


def test_without_a_bootstrap_credential_it_refuses_to_write_an_open_config(
    wheel: Path, tmp_path: Path
) -> None:
    result = run_install(tmp_path, wheel, "--device-id", "pi-08", "--nats-url", "nats://x:4222")
    assert result.returncode == 2, result.stdout
    assert "no --bootstrap-creds" in result.stderr
    assert "--no-auth" in result.stderr
    assert not (tmp_path / "etc/fleet-agent/config.toml").exists()


@pytest.mark.timeout(180)
def test_no_auth_writes_an_open_config_and_warns(wheel: Path, tmp_path: Path) -> None:
    result = run_install(
        tmp_path, wheel, "--device-id", "pi-08", "--nats-url", "nats://x:4222", "--no-auth"
    )
    assert result.returncode == 0, result.stderr
    assert "warning: --no-auth" in result.stdout
    assert "enrollment" not in (tmp_path / "etc/fleet-agent/config.toml").read_text()


def test_no_auth_and_a_bootstrap_credential_exclude_each_other(
    wheel: Path, tmp_path: Path, identity_files: dict[str, Path]
) -> None:
    result = run_install(
        tmp_path, wheel, "--device-id", "pi-01", "--nats-url", "tls://x:4222",
        "--bootstrap-creds", str(identity_files["creds"]), "--no-auth",
    )  # fmt: skip
    assert result.returncode == 2
    assert "exclude each other" in result.stderr
    assert not (tmp_path / "etc/fleet-agent/config.toml").exists()


def test_a_token_needs_the_bootstrap_credential(wheel: Path, tmp_path: Path) -> None:
    result = run_install(
        tmp_path, wheel, "--device-id", "pi-01", "--nats-url", "nats://x:4222",
        "--enrollment-token", TOKEN,
    )  # fmt: skip
    assert result.returncode == 2
    assert "needs --bootstrap-creds" in result.stderr
    assert not (tmp_path / "etc/fleet-agent/config.toml").exists()


def test_a_malformed_token_is_refused_unshown_and_nothing_is_written(
    wheel: Path, tmp_path: Path, identity_files: dict[str, Path]
) -> None:
    result = run_install(
        tmp_path, wheel, "--device-id", "pi-01", "--nats-url", "tls://x:4222",
        "--nats-ca", str(identity_files["ca"]),
        "--bootstrap-creds", str(identity_files["creds"]),
        "--enrollment-token", "NOT-A-TOKEN-secret",
    )  # fmt: skip
    assert result.returncode == 2, result.stdout
    assert "the enrollment token must look like" in result.stderr
    assert "secret" not in result.stdout + result.stderr
    etc = tmp_path / "etc/fleet-agent"
    assert not (etc / "config.toml").exists()
    assert not (etc / "bootstrap.creds").exists()
    assert not (etc / "nats-ca.pem").exists()
