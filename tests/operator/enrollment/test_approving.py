"""A device asks to join; a person approves it; its JWT works, with its permissions only."""

from __future__ import annotations

import ssl

import nats
import pytest

from fleet.cli.fleetctl import enrolling
from fleet.runtime.kube.client import KubeClient
from fleet.runtime.nats import subjects
from tests.security.conftest import wait_until

from .world import SimDevice, World

pytestmark = pytest.mark.timeout(60)


def test_a_request_waits_for_a_person_then_gets_a_working_credential(world: World) -> None:
    device = SimDevice("dev-1")
    first = world.enroll(device, labels={"site": "paris"})
    assert first.status == "pending"
    request = world.request("dev-1")
    assert request["spec"]["publicKey"] == device.key
    assert request["spec"]["labels"] == {"site": "paris"}
    assert request["status"]["phase"] == "Pending"

    enrolling.decide(KubeClient(world.kube.api_client), "dev-1", "Approved")
    approved = world.enroll_until(device, "approved", labels={"site": "paris"})
    assert approved.status == "approved", approved
    assert approved.jwt is not None
    assert world.request("dev-1")["status"]["phase"] == "Approved"
    assert world.request("dev-1")["status"]["approvedBy"] == "fleetctl"
    device_resource = world.get("devices", "dev-1")
    assert device_resource is not None
    assert device_resource["spec"]["publicKey"] == device.key

    creds = device.creds(world.directory, approved.jwt)
    renewed = world.renew(device, creds)
    assert renewed is not None
    assert renewed.status == "approved", renewed


def test_the_credential_allows_exactly_the_device_s_subjects(world: World) -> None:
    device, other = SimDevice("dev-2"), "dev-3"
    world.enroll(device)
    enrolling.decide(KubeClient(world.kube.api_client), "dev-2", "Approved")
    approved = world.enroll_until(device, "approved")
    assert approved.jwt is not None
    creds = device.creds(world.directory, approved.jwt)
    refusals: list[str] = []

    async def run() -> None:
        async def on_error(exc: Exception) -> None:
            refusals.append(str(exc).lower())

        client = await nats.connect(
            world.server.url, user_credentials=str(creds),
            tls=ssl.create_default_context(cafile=str(world.ca.ca_cert)),
            inbox_prefix="_INBOX_device_dev-2", error_cb=on_error, allow_reconnect=False,
        )  # fmt: skip
        try:
            await client.publish("$KV.device-heartbeat.heartbeat.dev-2", b"{}")
            for subject in (f"$KV.device-info.info.{other}", subjects.renew(other),
                            subjects.ENROLL, "$KV.desired-state.dev-2.web"):  # fmt: skip
                await client.publish(subject, b"{}")
            await client.flush(timeout=5)
            await wait_until(lambda: len(refusals) >= 4, timeout=5, what="four refusals")
        finally:
            await client.close()

    world.loop.run(run(), timeout=20)
    assert len(refusals) == 4, refusals
    assert not any("heartbeat.dev-2" in r for r in refusals)


def test_a_denied_device_hears_so(world: World) -> None:
    device = SimDevice("dev-4")
    assert world.enroll(device).status == "pending"
    enrolling.decide(KubeClient(world.kube.api_client), "dev-4", "Denied")
    denied = world.enroll_until(device, "denied")
    assert denied.jwt is None
    assert world.request("dev-4")["status"]["phase"] == "Denied"
