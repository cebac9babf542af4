"""A damaged seed file: taken back from device.creds, or a new key when none was ever
approved, and never a new key while credentials of the lost one exist."""

from __future__ import annotations

import logging

import pytest

from fleet.devtools.simulated_runtime import SimulatedRuntime
from fleet.runtime.nats.device_key import DeviceKeyStore

from .conftest import SCORE, EnrollWorld, wait_for
from .test_refusals_and_bad_replies import persist_web, running


def test_damaged_seed_is_taken_back_from_the_credentials(
    world: EnrollWorld, caplog: pytest.LogCaptureFixture
) -> None:
    world.operator.enroll_script = ["approved"]
    app = world.start_agent()
    store = DeviceKeyStore(world.state_dir)
    wait_for(store.credentials_path.exists, what="enrolled")
    key = world.operator.enrollments[0].public_key
    world.stop_agent(app)

    store.seed_path.write_bytes(b"SUgarbage\x00\xff")
    world.start_agent()
    revision = world.put_desired("web", SCORE)
    world.wait_running("web", revision)
    assert len(world.operator.enrollments) == 1  # the same key: no enrollment
    assert list(world.state_dir.glob("identity.seed.bad-*"))
    assert f"device key {key} taken back" in caplog.text


def test_lost_key_of_an_approved_device_is_not_replaced(
    world: EnrollWorld, caplog: pytest.LogCaptureFixture
) -> None:
    world.operator.enroll_script = ["approved"]
    store = DeviceKeyStore(world.state_dir)
    world.state_dir.mkdir(parents=True)
    store.seed_path.write_text("not a seed\n")
    store.credentials_path.write_text("damaged too\n")
    persist_web(world)
    runtime = SimulatedRuntime()
    app = world.start_agent(runtime=runtime)

    wait_for(lambda: running(runtime), timeout=10, what="the persisted workload running")
    assert any(
        r.levelno == logging.ERROR
        and "the key this device was approved with is lost" in r.getMessage()
        for r in caplog.records
    )
    assert world.operator.enrollments == []
    assert not store.seed_path.exists()  # set aside; no new key made
    assert store.credentials_path.read_text() == "damaged too\n"
    assert app.keeper is None
