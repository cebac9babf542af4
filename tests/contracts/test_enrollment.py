"""Enrollment messages: round trips, and every bad input a ContractError naming the field."""

from __future__ import annotations

import datetime as dt

import pytest

from fleet.contracts import (
    DeviceId,
    EnrollmentReply,
    EnrollmentRequest,
    Inventory,
    RenewalRequest,
    decode_enrollment_reply,
    decode_enrollment_request,
    decode_renewal_request,
    encode_enrollment,
    signed_bytes,
)
from fleet.errors import ContractError

KEY = "U" + "A" * 55
INVENTORY = Inventory(
    hostname="pi", arch="aarch64", os="debian", kernel="6.1", cpus=4,
    memory_bytes=1 << 30, runtime_name="podman", runtime_version="5.0",
)  # fmt: skip
NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def request(**changes: object) -> EnrollmentRequest:
    fields: dict[str, object] = {
        "device_id": "pi-1", "public_key": KEY, "labels": {"site": "lab"},
        "inventory": INVENTORY, "agent_version": "0.1.0", "at": NOW,
        "token": "abc123.0123456789abcdef",
    }  # fmt: skip
    fields.update(changes)
    return EnrollmentRequest(**fields)  # type: ignore[arg-type]


def test_round_trips_and_the_signed_bytes_leave_the_signature_out() -> None:
    signed = request(signature="A" * 86)
    assert decode_enrollment_request(encode_enrollment(signed)) == signed
    assert signed_bytes(signed) == signed_bytes(request())
    assert b"signature" not in signed_bytes(signed)
    renewal = RenewalRequest(device_id=DeviceId("pi-1"), public_key=KEY, at=NOW)
    assert decode_renewal_request(encode_enrollment(renewal)) == renewal
    reply = EnrollmentReply(status="approved", jwt="a.b.c", expires_at=NOW)
    assert decode_enrollment_reply(encode_enrollment(reply)) == reply


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (encode_enrollment(request()).replace(KEY.encode(), b"SABC"), "public_key"),
        (encode_enrollment(request()).replace(b"abc123.", b"ABC123."), "token"),
        (encode_enrollment(request()).replace(b'"pi-1"', b'"pi 1"'), "device_id"),
        (encode_enrollment(request()).replace(b'"site"', b'"-bad-"'), "labels"),
        (encode_enrollment(request()).replace(b"Z", b""), "at"),
        (encode_enrollment(request(signature="A" * 86)).replace(b"A" * 86, b"!" * 86), "signature"),
    ],
)
def test_a_bad_field_is_named(data: bytes, field: str) -> None:
    with pytest.raises(ContractError, match=field):
        decode_enrollment_request(data)


@pytest.mark.parametrize(
    "data",
    [b"", b"null", b"[" * 5000 + b"]" * 5000, b'{"device_id": "' + b"x" * 20000 + b'"}', b"\xff"],
)
def test_garbage_and_oversized_requests_are_contract_errors(data: bytes) -> None:
    with pytest.raises(ContractError):
        decode_enrollment_request(data)
    with pytest.raises(ContractError):
        decode_renewal_request(data)
    with pytest.raises(ContractError):
        decode_enrollment_reply(data)


def test_a_reply_carries_a_jwt_exactly_when_approved() -> None:
    with pytest.raises(ContractError, match="jwt"):
        EnrollmentReply(status="approved")
    with pytest.raises(ContractError, match="jwt"):
        decode_enrollment_reply(b'{"status": "pending", "jwt": "a.b.c"}')
    with pytest.raises(ContractError):
        decode_enrollment_reply(b'{"status": "maybe"}')
