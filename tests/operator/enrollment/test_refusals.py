"""Bad requests get a clear reason, change nothing, and the operator keeps answering."""

from __future__ import annotations

import datetime
from typing import Any

import msgspec
import pytest

from fleet.cli.fleetctl import enrolling
from fleet.runtime.kube.client import KubeClient
from fleet.runtime.nats import subjects

from .world import SimDevice, World, now

pytestmark = pytest.mark.timeout(90)


def test_a_second_key_for_an_enrolled_id_is_refused_with_a_condition(world: World) -> None:
    owner, thief = SimDevice("dup-1"), SimDevice("dup-1")
    world.enroll(owner)
    enrolling.decide(KubeClient(world.kube.api_client), "dup-1", "Approved")
    world.enroll_until(owner, "approved")
    reply = world.enroll(thief)
    assert reply.status == "refused"
    assert "enrolled with another key" in (reply.reason or "")
    request = world.request("dup-1")
    assert request["spec"]["publicKey"] == owner.key
    (condition,) = [c for c in request["status"]["conditions"] if c["type"] == "KeyConflict"]
    assert condition["status"] == "True"
    assert thief.key in condition["message"]
    device = world.get("devices", "dup-1")
    assert device is not None
    assert device["spec"]["publicKey"] == owner.key
    assert world.enroll_until(owner, "approved").jwt is not None  # the owner is unaffected


def _raw(device: SimDevice, **changes: Any) -> bytes:
    body = msgspec.json.decode(device.enrollment())
    body.update(changes)
    return msgspec.json.encode(body)


def _cases(device: SimDevice, other: SimDevice) -> dict[str, tuple[bytes, str]]:
    deep: Any = "x"
    for _ in range(200):
        deep = {"a": deep}
    return {
        "malformed key": (_raw(device, public_key="UNOTAKEY"), "public_key must be an nkey"),
        "id mismatch": (device.enrollment(signer=other.seed), "signature does not verify"),
        "someone else's key": (device.enrollment(key=other.key), "signature does not verify"),
        "bad signature": (_raw(device, signature="A" * 86), "signature does not verify"),
        "stale": (
            device.enrollment(at=now() - datetime.timedelta(seconds=900)),
            "from the operator's clock",
        ),
        "future": (
            device.enrollment(at=now() + datetime.timedelta(seconds=900)),
            "from the operator's clock",
        ),
        "oversized": (_raw(device, agent_version="v" * 17_000), "enrollment request"),
        "deep": (_raw(device, inventory=deep), "enrollment request"),
        "not json": (b"\xff{{{", "enrollment request"),
    }


def test_bad_requests_are_refused_with_a_reason_and_store_nothing(world: World) -> None:
    device, other = SimDevice("bad-1"), SimDevice("bad-2")
    for what, (data, reason) in _cases(device, other).items():
        reply = world.ask(subjects.ENROLL, data)
        assert reply is not None, f"{what}: no answer"
        assert reply.status == "refused", (what, reply)
        assert reason in (reply.reason or ""), (what, reply)
    assert world.listed("enrollmentrequests") == []
    assert world.listed("devices") == []
    assert world.enroll(device).status == "pending"  # and it still answers


def test_repeated_requests_get_the_same_answer_and_one_resource(world: World) -> None:
    device = SimDevice("rep-1")
    replies = [world.enroll(device) for _ in range(20)]
    assert {r.status for r in replies} == {"pending"}
    assert [r["metadata"]["name"] for r in world.listed("enrollmentrequests")] == ["rep-1"]


def test_a_renewal_for_another_device_or_an_unknown_one_is_refused(world: World) -> None:
    device = SimDevice("ren-1")
    world.enroll(device)
    enrolling.decide(KubeClient(world.kube.api_client), "ren-1", "Approved")
    approved = world.enroll_until(device, "approved")
    assert approved.jwt is not None
    creds = device.creds(world.directory, approved.jwt)
    stranger = SimDevice("ren-1")  # the same id, another key: not the enrolled one
    reply = world.ask(
        subjects.renew("ren-1"), stranger.renewal(), creds=creds,
        inbox_prefix="_INBOX_device_ren-1",
    )  # fmt: skip
    assert reply is not None
    assert reply.status == "refused"
    assert "another key" in (reply.reason or "")
