"""The device's requests are signed by its key; any reply bytes give a reply or None."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
from collections.abc import Callable

import msgspec
import nacl.signing
import pytest

from fleet.contracts import (
    DeviceId,
    EnrollmentReply,
    Inventory,
    decode_enrollment_request,
    decode_renewal_request,
    encode_enrollment,
    signed_bytes,
)
from fleet.errors import BusUnavailable
from fleet.runtime.nats import claims, subjects
from fleet.runtime.nats.device_key import DeviceKey
from fleet.runtime.nats.enroll_client import EnrollmentClient, jwt_times
from fleet.runtime.nats.transport import Message, MessageHandler, Subscription, Transport

DEVICE = DeviceId("pi-01")
NOW = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
INVENTORY = Inventory(
    hostname="pi", arch="aarch64", os="Debian", kernel="6.1", cpus=4, memory_bytes=1 << 30,
    runtime_name="podman", runtime_version="4.3",
)  # fmt: skip


class Replying(Transport):
    """A transport whose requests are answered by ``answer`` (bytes, or an exception)."""

    def __init__(self, answer: Callable[[str, bytes], bytes | Exception]) -> None:
        self.answer = answer
        self.sent: list[tuple[str, bytes]] = []

    @property
    def connected(self) -> bool:
        return True

    async def wait_connected(self, *, timeout: float | None) -> None:
        return None

    def add_reconnect_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        return lambda: None

    def new_inbox(self) -> str:
        return "_INBOX_test.1"

    async def publish(
        self, subject: str, payload: bytes = b"", *, reply: str = "",
        headers: object = None,
    ) -> None:  # fmt: skip
        raise AssertionError("not used")

    async def subscribe(self, subject: str, handler: MessageHandler) -> Subscription:
        raise AssertionError("not used")

    async def request(
        self, subject: str, payload: bytes = b"", *, headers: object = None, timeout: float
    ) -> Message:
        self.sent.append((subject, payload))
        answer = self.answer(subject, payload)
        if isinstance(answer, Exception):
            raise answer
        return Message(subject="_INBOX_test.1", reply="", data=answer, headers=None)

    async def flush(self, *, timeout: float) -> None:
        return None


def verify(key: str, data: bytes, signature: str) -> None:
    raw = base64.b32decode(key + "=" * (-len(key) % 8))[1:33]
    nacl.signing.VerifyKey(raw).verify(data, base64.urlsafe_b64decode(signature + "=="))


def client(key: DeviceKey, token: str | None = None) -> EnrollmentClient:
    return EnrollmentClient(
        device_id=DEVICE, key=key, agent_version="1.2.3", token=token, clock=lambda: NOW
    )


def jwt_for(key: str, *, exp: int) -> str:
    return claims.encode(
        claims.Claims(sub=key, name="pi-01", exp=exp, nats=claims.UserFields()),
        signer_seed=claims.new_seed("account"), signer_kind="account",
    )  # fmt: skip


@pytest.fixture
def key() -> DeviceKey:
    return DeviceKey(claims.new_seed("user"))


def test_enrollment_request_is_signed_and_carries_the_device(key: DeviceKey) -> None:
    request = client(key, token="abc123.0123456789abcdef").enrollment_request(
        labels={"site": "lab"}, inventory=INVENTORY
    )
    wire = decode_enrollment_request(encode_enrollment(request))
    assert (wire.device_id, wire.public_key, wire.at) == (DEVICE, key.public_key, NOW)
    assert (wire.labels, wire.agent_version, wire.token) == (
        {"site": "lab"},
        "1.2.3",
        "abc123.0123456789abcdef",
    )
    verify(key.public_key, signed_bytes(wire), wire.signature)


def test_renewal_request_is_signed(key: DeviceKey) -> None:
    wire = decode_renewal_request(encode_enrollment(client(key).renewal_request()))
    assert wire.public_key == key.public_key
    verify(key.public_key, signed_bytes(wire), wire.signature)


def ask(key: DeviceKey, answer: bytes | Exception) -> EnrollmentReply | None:
    transport = Replying(lambda subject, payload: answer)
    request = client(key).renewal_request()
    reply = asyncio.run(client(key).ask(transport, subjects.renew(DEVICE), request, what="renewal"))
    assert transport.sent[0][0] == "fleet.renew.pi-01"
    return reply


def test_valid_replies(key: DeviceKey) -> None:
    jwt = jwt_for(key.public_key, exp=int(time.time()) + 600)
    approved = ask(key, encode_enrollment(EnrollmentReply(status="approved", jwt=jwt)))
    assert approved is not None
    assert approved.jwt == jwt
    pending = ask(key, b'{"status": "pending", "retry_after_s": 3}')
    assert pending is not None
    assert pending.retry_after_s == 3


@pytest.mark.parametrize(
    "answer",
    [
        b"",
        b"\xff\xfe",
        b"[]",
        b'{"status": "maybe"}',
        b'{"status": "approved"}',
        b'{"status": "pending", "retry_after_s": -1}',
        b'{"status": "pending", "reason": "' + b"r" * 20_000 + b'"}',
        b"[" * 10_000,
        BusUnavailable("no answer"),
    ],
)
def test_malformed_or_missing_replies_are_none(key: DeviceKey, answer: bytes | Exception) -> None:
    assert ask(key, answer) is None


def test_an_approved_jwt_for_another_key_or_already_expired_is_none(key: DeviceKey) -> None:
    other = DeviceKey(claims.new_seed("user")).public_key
    foreign = jwt_for(other, exp=int(time.time()) + 600)
    assert ask(key, encode_enrollment(EnrollmentReply(status="approved", jwt=foreign))) is None
    stale = jwt_for(key.public_key, exp=int(time.time()) - 1)
    assert ask(key, encode_enrollment(EnrollmentReply(status="approved", jwt=stale))) is None


def test_denied_is_logged_as_an_error(key: DeviceKey, caplog: pytest.LogCaptureFixture) -> None:
    reply = ask(key, msgspec.json.encode({"status": "denied", "reason": "no"}))
    assert reply is not None
    assert any(r.levelname == "ERROR" and "denied: no" in r.getMessage() for r in caplog.records)


def test_jwt_times() -> None:
    key = DeviceKey(claims.new_seed("user")).public_key
    times = jwt_times(jwt_for(key, exp=2_000_000_000))
    assert times is not None
    assert times[1] == 2_000_000_000
    assert jwt_times(jwt_for(key, exp=0)) is None
    assert jwt_times("not a jwt") is None
