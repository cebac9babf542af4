"""Renewal before expiry over the device's own connection; an expired credential falls
back to the bootstrap credential with the same key; a refused renewal stops renewing."""

from __future__ import annotations

import logging
import time

import pytest

from fleet.runtime.nats.device_key import DeviceKeyStore, read_credentials
from fleet.runtime.nats.enroll_client import jwt_times

from .conftest import SCORE, EnrollWorld, wait_for


def other(image: str) -> dict[str, object]:
    return {**SCORE, "containers": [{"name": "web", "image": image}]}


def test_renews_before_expiry_and_keeps_following(world: EnrollWorld) -> None:
    world.operator.enroll_script = ["approved"]
    world.operator.ttl = 6.0
    app = world.start_agent()
    store = DeviceKeyStore(world.state_dir)
    revision = world.put_desired("web", SCORE)
    world.wait_running("web", revision)
    first = world.operator.approved[0]
    times = jwt_times(first)
    assert times is not None
    first_expiry = times[1]

    wait_for(lambda: world.operator.renewals, timeout=8, what="a renewal request")
    assert time.time() < first_expiry  # before expiry
    renewal = world.operator.renewals[0]
    assert renewal.public_key == world.operator.enrollments[0].public_key
    wait_for(
        lambda: read_credentials(store.credentials_path)[0] != first,
        timeout=5, what="device.creds with the renewed JWT",
    )  # fmt: skip
    assert world.operator.bad_signatures == 0

    # Past the first JWT's expiry the agent still follows its desired state: its
    # connection presents the renewed JWT.
    wait_for(lambda: time.time() > first_expiry + 0.5, timeout=10, what="the first expiry")
    revision = world.put_desired("web", other("localhost/busybox:renewed"))
    world.wait_running("web", revision, timeout=10)
    assert app.bus is not None
    assert app.bus.connected
    assert len(world.operator.enrollments) == 1


def test_expired_credential_enrolls_again_with_the_same_key(
    world: EnrollWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    world.operator.enroll_script = ["approved"]
    world.operator.renew_script = [None]  # the operator does not answer renewals
    world.operator.ttl = 4.0
    world.start_agent()
    revision = world.put_desired("web", SCORE)
    world.wait_running("web", revision)

    wait_for(lambda: len(world.operator.enrollments) >= 2, timeout=20, what="a second enrollment")
    keys = {r.public_key for r in world.operator.enrollments}
    assert len(keys) == 1
    assert world.operator.renewals  # it tried to renew first
    assert "has expired: asking again over the bootstrap credential" in caplog.text
    # The connection closed at the expiry is made anew with the fresh credential.
    world.operator.ttl = 3600.0
    revision = world.put_desired("web", other("localhost/busybox:after-expiry"))
    world.wait_running("web", revision, timeout=20)


def test_refused_renewal_stops_renewing_and_workloads_keep_running(
    world: EnrollWorld, caplog: pytest.LogCaptureFixture
) -> None:
    world.operator.enroll_script = ["approved", "refused"]  # after the expiry: refused
    world.operator.renew_script = ["refused"]
    world.operator.reason = "revoked by a person"
    world.operator.ttl = 4.0
    app = world.start_agent()
    revision = world.put_desired("web", SCORE)
    world.wait_running("web", revision)

    wait_for(lambda: world.operator.renewals, timeout=6, what="a renewal request")
    wait_for(
        lambda: "renewal of" in caplog.text and "refused: revoked by a person" in caplog.text,
        timeout=5, what="the refusal logged",
    )  # fmt: skip
    assert any(
        r.levelno == logging.ERROR and "renewal of" in r.getMessage() for r in caplog.records
    )
    # Renewing stopped; past the expiry it asks as a new device, slowly, and is refused.
    wait_for(lambda: len(world.operator.enrollments) >= 3, timeout=20, what="asking again")
    assert len(world.operator.renewals) == 1
    runtime = app.runtime
    assert [c.state for c in runtime.containers.values()] == ["running"]  # type: ignore[attr-defined]
