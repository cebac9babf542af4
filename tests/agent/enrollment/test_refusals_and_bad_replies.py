"""Denied or refused: logged at ERROR, asked again slowly, workloads keep running from the
persisted desired state; malformed and oversized replies are logged and asked again."""

from __future__ import annotations

import logging

import msgspec
import pytest

from fleet.devtools.simulated_runtime import SimulatedRuntime
from fleet.runtime.host.desired_store import DesiredStore, StoredDesired, StoredEntry
from fleet.runtime.nats.device_key import DeviceKeyStore

from .conftest import SCORE, EnrollWorld, wait_for


def persist_web(world: EnrollWorld) -> None:
    """A desired entry kept from an earlier run: what an offline boot runs."""
    DesiredStore(world.state_dir).save(
        StoredDesired(entries={"web": StoredEntry(revision=1, value=msgspec.json.encode(SCORE))})
    )


def running(runtime: SimulatedRuntime) -> bool:
    return [c.state for c in runtime.containers.values()] == ["running"]


def test_denied_is_logged_and_asked_again_slowly_while_workloads_run(
    world: EnrollWorld, caplog: pytest.LogCaptureFixture
) -> None:
    world.operator.enroll_script = ["denied"]
    world.operator.reason = "not on the list"
    persist_web(world)
    runtime = SimulatedRuntime()
    world.start_agent(runtime=runtime)

    wait_for(lambda: len(world.operator.enrollments) >= 3, timeout=10, what="asking again")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any("denied: not on the list" in r.getMessage() for r in errors)
    wait_for(lambda: running(runtime), timeout=10, what="the persisted workload running")
    assert not DeviceKeyStore(world.state_dir).credentials_path.exists()

    world.operator.enroll_script = ["approved"]  # a person changed their mind
    revision = world.put_desired("web", {**SCORE, "containers": [
        {"name": "web", "image": "localhost/busybox:approved"}]})  # fmt: skip
    world.wait_running("web", revision)


def test_malformed_and_oversized_replies_do_not_stop_enrollment(
    world: EnrollWorld, caplog: pytest.LogCaptureFixture
) -> None:
    world.operator.enroll_script = [
        b"\xff not json",
        b'{"status": "approved", "jwt": "' + b"x" * 20_000 + b'"}',  # over the reply bound
        b'{"status": "approved"}',  # approved without a JWT
        "approved",
    ]
    world.start_agent()
    store = DeviceKeyStore(world.state_dir)
    wait_for(store.credentials_path.exists, timeout=20, what="enrolled in the end")
    assert len(world.operator.enrollments) == 4
    malformed = [r for r in caplog.records if "malformed reply" in r.getMessage()]
    assert len(malformed) == 3
    revision = world.put_desired("web", SCORE)
    world.wait_running("web", revision)
