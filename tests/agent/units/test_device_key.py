"""The device's key and credentials files, without a server: made once, reused, damaged
files set aside, and no new key while credentials of a lost one exist."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from fleet.runtime.nats import claims
from fleet.runtime.nats.device_key import DeviceKey, DeviceKeyStore, KeyLost, read_credentials


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def fake_jwt(key: str) -> str:
    """A JWT about ``key`` (its signer does not matter here: nothing verifies it)."""
    fields = claims.UserFields()
    return claims.encode(
        claims.Claims(sub=key, name="d", exp=2_000_000_000, nats=fields),
        signer_seed=claims.new_seed("account"),
        signer_kind="account",
    )


def test_first_start_makes_a_key_and_restarts_reuse_it(tmp_path: Path) -> None:
    store = DeviceKeyStore(tmp_path / "state")
    key = store.load_or_create()
    assert key.public_key.startswith("U")
    assert mode(store.seed_path) == 0o600
    assert DeviceKeyStore(tmp_path / "state").load_or_create().public_key == key.public_key
    assert store.seed_path.read_text().strip() not in repr(key)
    assert not list(store.state_dir.glob(".*partial"))


def test_credentials_are_written_whole_and_read_back_for_their_key(tmp_path: Path) -> None:
    store = DeviceKeyStore(tmp_path)
    key = store.load_or_create()
    assert store.read_jwt(key) is None
    jwt = fake_jwt(key.public_key)
    store.save_credentials(key, jwt=jwt)
    assert mode(store.credentials_path) == 0o600
    assert store.read_jwt(key) == jwt
    assert read_credentials(store.credentials_path)[1] == store.seed_path.read_text().strip()


def test_credentials_of_another_key_are_set_aside(tmp_path: Path) -> None:
    store = DeviceKeyStore(tmp_path)
    key = store.load_or_create()
    other = DeviceKey(claims.new_seed("user"))
    other.write_credentials(store.credentials_path, jwt=fake_jwt(other.public_key))
    assert store.read_jwt(key) is None
    assert not store.credentials_path.exists()
    assert list(tmp_path.glob("device.creds.bad-*"))


def test_a_seed_readable_by_others_is_made_private(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = DeviceKeyStore(tmp_path)
    store.load_or_create()
    store.seed_path.chmod(0o644)
    store.load_or_create()
    assert mode(store.seed_path) == 0o600
    assert "readable by others" in caplog.text


@pytest.mark.parametrize(
    "content", [b"", b"garbage", b"SU" + b"A" * 20, b"\xff" * 10, b"x" * 70_000]
)
def test_damaged_seed_without_credentials_starts_over_with_a_new_key(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store = DeviceKeyStore(tmp_path)
    store.seed_path.write_bytes(content)
    key = store.load_or_create()
    assert [p.read_bytes() for p in tmp_path.glob("identity.seed.bad-*")] == [content]
    assert DeviceKeyStore(tmp_path).load_or_create().public_key == key.public_key
    assert "enrollment starts over" in caplog.text
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_damaged_seed_is_taken_back_from_the_credentials(tmp_path: Path) -> None:
    store = DeviceKeyStore(tmp_path)
    key = store.load_or_create()
    store.save_credentials(key, jwt=fake_jwt(key.public_key))
    store.seed_path.write_text("SUbroken\n")
    assert store.load_or_create().public_key == key.public_key
    assert DeviceKey(store.seed_path.read_text().strip()).public_key == key.public_key


@pytest.mark.parametrize("seed_file", ["damaged", "missing"])
def test_no_new_key_while_credentials_of_the_lost_one_exist(tmp_path: Path, seed_file: str) -> None:
    store = DeviceKeyStore(tmp_path)
    if seed_file == "damaged":
        store.seed_path.write_text("nope")
    store.credentials_path.write_text("-----BEGIN NATS USER JWT-----\nx\n")
    with pytest.raises(KeyLost, match=r"is lost\. No new key is made"):
        store.load_or_create()
    assert not store.seed_path.exists()
    assert store.credentials_path.exists()  # left for a person
