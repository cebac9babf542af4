"""Revocation: the device's connection drops within seconds, renewals are refused, and a
restarted operator pushes every revocation again."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import nats
import pytest

from fleet.cli.fleetctl import enrolling
from fleet.runtime.kube.client import KubeClient
from tests.security.conftest import wait_until

from .world import SimDevice, World

pytestmark = pytest.mark.timeout(90)


def approved_device(world: World, device_id: str) -> tuple[SimDevice, Path]:
    device = SimDevice(device_id)
    world.enroll(device)
    enrolling.decide(KubeClient(world.kube.api_client), device_id, "Approved")
    reply = world.enroll_until(device, "approved")
    assert reply.jwt is not None
    return device, device.creds(world.directory, reply.jwt)


def connection_dropped(world: World, creds: Path, device_id: str, *, timeout: float) -> bool:
    async def run() -> bool:
        client = await world.connect(creds, inbox_prefix=f"_INBOX_device_{device_id}")
        with contextlib.suppress(AssertionError):
            await wait_until(lambda: not client.is_connected, timeout=timeout, what="a drop")
        dropped = not client.is_connected
        await client.close()
        return dropped

    return bool(world.loop.run(run(), timeout=timeout + 10))


def connect_refused(world: World, creds: Path, device_id: str) -> bool:
    async def run() -> bool:
        try:
            client = await world.connect(creds, inbox_prefix=f"_INBOX_device_{device_id}")
        except (nats.errors.Error, OSError):
            return True
        await client.close()
        return False

    return bool(world.loop.run(run(), timeout=20))


@pytest.mark.parametrize("how", ["fleetctl", "kubectl delete fleetdev"])
def test_revoking_drops_the_device_and_refuses_its_renewals(world: World, how: str) -> None:
    device, creds = approved_device(world, "rv-1")
    client = KubeClient(world.kube.api_client)

    def revoke() -> None:
        time.sleep(0.5)  # let the device connect first: its connection must be *dropped*
        if how == "fleetctl":
            enrolling.revoke(client, "rv-1")
        else:
            world.delete("devices", "rv-1")

    revoker = threading.Thread(target=revoke)
    revoker.start()
    try:
        assert connection_dropped(world, creds, "rv-1", timeout=10)
    finally:
        revoker.join()
    deadline = time.monotonic() + 10
    while world.request("rv-1").get("status", {}).get("phase") != "Revoked":
        assert time.monotonic() < deadline, world.request("rv-1")
        time.sleep(0.05)
    assert connect_refused(world, creds, "rv-1")
    assert world.enroll(device).status == "refused"


def test_a_restarted_operator_pushes_revocations_again(world: World) -> None:
    _device, creds = approved_device(world, "rv-2")
    enrolling.revoke(KubeClient(world.kube.api_client), "rv-2")
    deadline = time.monotonic() + 10
    while not connect_refused(world, creds, "rv-2"):
        assert time.monotonic() < deadline
    world.stop_operators()
    # The server forgets every update it had: its resolver starts from the preloaded JWT.
    world.server.stop()
    for path in (world.directory / "js").glob("accounts/*"):
        path.unlink()
    world.server.start()
    assert not connect_refused(world, creds, "rv-2")  # the server alone lets it in again
    world.start_operator()
    assert connect_refused(world, creds, "rv-2")


def test_a_device_deleted_while_the_operator_was_away_is_revoked_at_start(world: World) -> None:
    _device, creds = approved_device(world, "rv-3")
    world.stop_operators()
    world.delete("devices", "rv-3")
    world.start_operator()
    assert world.request("rv-3")["status"]["phase"] == "Revoked"
    assert connect_refused(world, creds, "rv-3")
