"""Joining a fleet: the enrollment request a new device sends, and the answer it gets.

Why it exists: a device proves who it is with its own nkey pair (made on the device; the
seed never leaves it). To join, it sends an :class:`EnrollmentRequest` (its id, its
public key, its labels and inventory, and optionally a bootstrap token) over a bootstrap
credential that can do nothing but ask; the operator answers with an
:class:`EnrollmentReply`: ``pending`` until a person or a token's policy approves,
then ``approved`` with the device's user JWT (signed for exactly that public key, so the
JWT is no secret: only the seed's holder can use it). The device asks again, with the
same key, until it is approved, denied or refused. A :class:`RenewalRequest` asks, over
the device's own credentials, for a fresh JWT before the current one expires.

Each request is signed by the device's key over :func:`signed_bytes` (the request with
an empty ``signature``), so nobody can enroll, or renew, a key whose seed they lack;
``at`` bounds how long a captured request can be replayed (the operator refuses one
older than its window). Verifying signatures needs an ed25519 library: that is the
runtime's job (:func:`fleet.runtime.nats.claims.verify_signature`); here
is only the shape, bounded and total like every value on the bus.

What it must never do: do I/O, or accept a request whose fields it has not checked.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

import msgspec

from fleet.errors import ContractError

from ._checks import Timestamp, device_id_field, utc_field
from .codec import dec_hook, decode_bounded, enc_hook, encode_bounded
from .info import Inventory
from .labels import LABEL_RULE, check_labels
from .limits import MAX_LABELS, MAX_MESSAGE_LENGTH, check_length
from .names import DeviceId

MAX_ENROLLMENT_BYTES: Final = 16 * 1024
"""An enrollment or renewal request, or a reply (a user JWT is ~1 KB)."""
MAX_JWT_LENGTH: Final = 8 * 1024
MAX_TOKEN_LENGTH: Final = 128

PUBLIC_KEY_PATTERN: Final = r"^U[A-Z2-7]{55}$"
"""An nkey *user* public key: ``U`` and 55 base32 characters."""
TOKEN_PATTERN: Final = r"^[a-z0-9]{6}\.[a-z0-9]{16,64}$"
"""A bootstrap token: ``<id>.<secret>`` (the id names it in lists; the secret proves it)."""
SIGNATURE_PATTERN: Final = r"^[A-Za-z0-9_-]{86}$"
"""An ed25519 signature (64 bytes), base64url without padding."""

_PUBLIC_KEY: Final = re.compile(PUBLIC_KEY_PATTERN)
_TOKEN: Final = re.compile(TOKEN_PATTERN)
_SIGNATURE: Final = re.compile(SIGNATURE_PATTERN)

PublicKey = Annotated[
    str,
    msgspec.Meta(
        description="An nkey user public key (U + 55 base32 characters).",
        extra_json_schema={"pattern": PUBLIC_KEY_PATTERN},
    ),
]
Signature = Annotated[
    str,
    msgspec.Meta(
        description="ed25519 signature by the device key over the request with an empty "
        "signature, base64url without padding ('' only while signing).",
        extra_json_schema={"pattern": f"{SIGNATURE_PATTERN}|^$"},
    ),
]

EnrollmentStatus = Literal["pending", "approved", "denied", "refused"]
"""``pending``: ask again later; ``approved``: ``jwt`` holds the credential; ``denied``:
a person said no; ``refused``: the request itself is not acceptable (``reason`` says why:
a bad signature, an id enrolled with another key, a token expired or used up)."""


def _check_key(obj: msgspec.Struct, field: str) -> None:
    value = getattr(obj, field)
    if not isinstance(value, str) or _PUBLIC_KEY.fullmatch(value) is None:
        raise ContractError(
            f"{field} must be an nkey user public key (U + 55 base32 characters)", field=field
        )


def _check_signature(obj: msgspec.Struct) -> None:
    value = obj.signature  # type: ignore[attr-defined]
    if value != "" and _SIGNATURE.fullmatch(value) is None:
        raise ContractError(
            "signature must be 86 base64url characters (an ed25519 signature)", field="signature"
        )


class EnrollmentRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``device_id`` asks to join with ``public_key``; signed by that key."""

    device_id: DeviceId
    public_key: PublicKey
    labels: Annotated[
        dict[str, str],
        msgspec.Meta(
            description=f"Labels asked for; each {LABEL_RULE}.",
            extra_json_schema={"maxProperties": MAX_LABELS},
        ),
    ]
    inventory: Inventory
    agent_version: str
    at: Timestamp
    token: Annotated[
        str | None,
        msgspec.Meta(description="A bootstrap token, <id>.<secret>, if the device has one."),
    ] = None
    signature: Signature = ""

    def __post_init__(self) -> None:
        device_id_field(self, "device_id")
        _check_key(self, "public_key")
        check_length(self.labels, field="labels", limit=MAX_LABELS, what="labels")
        check_labels(self.labels)
        check_length(self.agent_version, field="agent_version", limit=MAX_MESSAGE_LENGTH)
        utc_field(self, "at")
        if self.token is not None and (
            not isinstance(self.token, str)
            or len(self.token) > MAX_TOKEN_LENGTH
            or _TOKEN.fullmatch(self.token) is None
        ):
            raise ContractError("token must be <6 of a-z0-9>.<16..64 of a-z0-9>", field="token")
        _check_signature(self)


class RenewalRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``device_id`` (already enrolled with ``public_key``) asks for a fresh JWT."""

    device_id: DeviceId
    public_key: PublicKey
    at: Timestamp
    signature: Signature = ""

    def __post_init__(self) -> None:
        device_id_field(self, "device_id")
        _check_key(self, "public_key")
        utc_field(self, "at")
        _check_signature(self)


class EnrollmentReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The operator's answer to an enrollment or renewal request."""

    status: EnrollmentStatus
    reason: str | None = None
    jwt: str | None = None
    expires_at: Timestamp | None = None
    retry_after_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 10.0

    def __post_init__(self) -> None:
        if self.reason is not None:
            check_length(self.reason, field="reason", limit=MAX_MESSAGE_LENGTH)
        if self.jwt is not None:
            check_length(self.jwt, field="jwt", limit=MAX_JWT_LENGTH)
        if (self.status == "approved") != (self.jwt is not None):
            raise ContractError("jwt is given exactly when status is approved", field="jwt")
        if self.expires_at is not None:
            utc_field(self, "expires_at")


_ENCODER: Final = msgspec.json.Encoder(enc_hook=enc_hook)
_REQUEST: Final = msgspec.json.Decoder(EnrollmentRequest, dec_hook=dec_hook)
_RENEWAL: Final = msgspec.json.Decoder(RenewalRequest, dec_hook=dec_hook)
_REPLY: Final = msgspec.json.Decoder(EnrollmentReply, dec_hook=dec_hook)


def signed_bytes(request: EnrollmentRequest | RenewalRequest) -> bytes:
    """What the device signs: the request's JSON with an empty ``signature`` (field
    order as declared; ``omit_defaults`` leaves the empty signature out)."""
    return _ENCODER.encode(msgspec.structs.replace(request, signature=""))


def encode_enrollment(message: EnrollmentRequest | RenewalRequest | EnrollmentReply) -> bytes:
    return encode_bounded(
        _ENCODER.encode(message), what="enrollment message", max_bytes=MAX_ENROLLMENT_BYTES
    )


def decode_enrollment_request(data: bytes) -> EnrollmentRequest:
    """Decode an enrollment request; :class:`ContractError` if it breaks the contract."""
    return decode_bounded(_REQUEST, data, what="enrollment request", max_bytes=MAX_ENROLLMENT_BYTES)


def decode_renewal_request(data: bytes) -> RenewalRequest:
    """Decode a renewal request; :class:`ContractError` if it breaks the contract."""
    return decode_bounded(_RENEWAL, data, what="renewal request", max_bytes=MAX_ENROLLMENT_BYTES)


def decode_enrollment_reply(data: bytes) -> EnrollmentReply:
    """Decode the operator's reply; :class:`ContractError` if it breaks the contract."""
    return decode_bounded(_REPLY, data, what="enrollment reply", max_bytes=MAX_ENROLLMENT_BYTES)
