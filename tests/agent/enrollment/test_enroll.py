"""The real agent code path enrolls its own key, connects with its credentials, follows
its desired state, and keeps its key and credentials across restarts."""

from __future__ import annotations

import logging
import stat

import pytest

from fleet.runtime.nats import claims
from fleet.runtime.nats.device_key import DeviceKeyStore, read_credentials

from .conftest import SCORE, EnrollWorld, wait_for


def mode(path: object) -> int:
    assert hasattr(path, "stat")
    return stat.S_IMODE(path.stat().st_mode)


def test_pending_then_approved_then_follows_desired_state(
    world: EnrollWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    world.operator.enroll_script = ["pending", "pending", "approved"]
    app = world.start_agent()
    store = DeviceKeyStore(world.state_dir)
    wait_for(store.credentials_path.exists, what="device.creds written")

    assert len(world.operator.enrollments) == 3
    assert world.operator.bad_signatures == 0
    first = world.operator.enrollments[0]
    assert first.device_id == world.device
    assert first.labels == {"site": "lab"}
    assert first.inventory.runtime_name == "simulated"
    assert {r.public_key for r in world.operator.enrollments} == {first.public_key}
    # the seed stays on the device: 0600 files, never in a request
    assert mode(store.seed_path) == 0o600
    assert mode(store.credentials_path) == 0o600
    seed = store.seed_path.read_text().strip()
    assert claims.public_key(seed, "user") == first.public_key
    jwt, creds_seed = read_credentials(store.credentials_path)
    assert creds_seed == seed
    assert jwt == world.operator.approved[-1]
    assert seed not in caplog.text
    assert "pending approval" in caplog.text

    revision = world.put_desired("web", SCORE)
    world.wait_running("web", revision)
    assert app.bus is not None
    assert app.bus.connected


def test_restart_reuses_the_key_and_the_credentials(world: EnrollWorld) -> None:
    world.operator.enroll_script = ["approved"]
    app = world.start_agent()
    store = DeviceKeyStore(world.state_dir)
    revision = world.put_desired("web", SCORE)
    world.wait_running("web", revision)
    seed = store.seed_path.read_text()
    creds = store.credentials_path.read_text()
    world.stop_agent(app)

    world.start_agent()
    revision = world.put_desired("web", {**SCORE, "containers": [
        {"name": "web", "image": "localhost/busybox:other"}]})  # fmt: skip
    world.wait_running("web", revision)
    assert len(world.operator.enrollments) == 1  # no second enrollment
    assert store.seed_path.read_text() == seed
    assert store.credentials_path.read_text() == creds
