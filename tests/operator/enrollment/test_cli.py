"""``fleet-operator --auth-dir DIR --init-auth``: the authority's files, private."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.runtime.nats.authority_files import load_or_create

pytestmark = pytest.mark.timeout(60)


def test_init_auth_creates_the_authority_once_and_keeps_it_private(tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    argv = [sys.executable, "-m", "fleet.cli.operator", "--auth-dir", str(auth), "--init-auth"]
    first = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    assert first.returncode == 0, first.stderr
    names = {p.name for p in auth.iterdir()}
    assert {"operator.seed", "system.seed", "account.seed", "signing.seed", "nats-auth.conf",
            "bootstrap.creds", "fleetctl.creds"} <= names  # fmt: skip
    assert stat.S_IMODE(auth.stat().st_mode) == 0o700
    for path in auth.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    account = load_or_create(auth).account
    again = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    assert again.returncode == 0
    assert load_or_create(auth).account == account  # kept, not made anew


def test_half_an_authority_is_refused(tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    load_or_create(auth)
    (auth / "signing.seed").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "fleet.cli.operator", "--auth-dir", str(auth), "--init-auth"],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "signing.seed" in result.stderr


def test_keys_from_a_read_only_directory_are_read_there_and_never_written(
    tmp_path: Path,
) -> None:
    made = load_or_create(tmp_path / "made")
    keys, state = tmp_path / "keys", tmp_path / "state"
    keys.mkdir()
    for name in ("operator", "system", "account", "signing"):
        (keys / f"{name}.seed").write_bytes((tmp_path / "made" / f"{name}.seed").read_bytes())
    keys.chmod(0o500)
    try:
        assert load_or_create(state, keys=keys).account == made.account
        assert {"nats-auth.conf", "nats-accounts.conf", "bootstrap.creds"} <= {
            p.name for p in state.iterdir()
        }
        assert not any(p.suffix == ".seed" for p in state.iterdir())
    finally:
        keys.chmod(0o700)


def test_a_malformed_key_is_named_with_its_directory(tmp_path: Path) -> None:
    load_or_create(tmp_path / "made")
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("operator", "system", "account", "signing"):
        (keys / f"{name}.seed").write_bytes((tmp_path / "made" / f"{name}.seed").read_bytes())
    (keys / "signing.seed").write_text("SAnot-a-seed")
    result = subprocess.run(
        [sys.executable, "-m", "fleet.cli.operator", "--auth-dir", str(tmp_path / "state"),
         "--auth-keys", str(keys), "--nats-url", "tls://127.0.0.1:1"],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"{keys}: malformed account nkey seed" in result.stderr
    assert "SAnot-a-seed" not in result.stderr
