"""NATS JWTs: the operator's, the accounts' and the users' claims, signed with nkeys.

Why it exists: nats-server's decentralized auth (docs/security.md) trusts an operator
JWT, account JWTs the operator signed, and user JWTs an account (or one of its signing
keys) signed. A JWT is ``header.claims.signature`` in unpadded base64url, the signature
an ed25519 nkey's over the first two parts. The claims are spelled here as frozen
structs with nats-server's own field names (its ``jwt/v2`` package), and their defaults
are the server's zero values, so a field left out means what the server reads for a
missing one. ``nkeys`` (the NATS maintainers' library) makes the keys and signs; the
``nats-jwt`` package on the index (0.2.2) was not used: it spells the response permission
``max_msgs``/``expires`` where the server reads ``max``/``ttl``, its decoder refuses the
user JWTs its encoder writes (``bearer_token: null``), and it is untyped, with four
dependencies for what is this module.

It also checks a device's signature over its enrollment or renewal request
(:func:`verify_signature`): the one other thing fleet needs ed25519 for.

What it must never do: write a seed anywhere (:mod:`fleet.runtime.nats.identity`
writes credentials files), or accept a key of the wrong kind for its role.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from typing import Any, Literal

import msgspec
import nacl.exceptions
import nacl.signing
import nkeys

from fleet.errors import ConfigError
from fleet.runtime.nats.permissions import Permission

KeyKind = Literal["operator", "account", "user"]
_PREFIX: dict[KeyKind, int] = {
    "operator": nkeys.PREFIX_BYTE_OPERATOR,
    "account": nkeys.PREFIX_BYTE_ACCOUNT,
    "user": nkeys.PREFIX_BYTE_USER,
}
_SEED_START: dict[KeyKind, str] = {"operator": "SO", "account": "SA", "user": "SU"}
_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
_encode = msgspec.json.Encoder()


def new_seed(kind: KeyKind) -> str:
    """A fresh nkey seed (``SO...``, ``SA...``, ``SU...``): the private half. Keep it secret."""
    return bytes(nkeys.encode_seed(os.urandom(32), _PREFIX[kind])).decode()


def public_key(seed: str, kind: KeyKind) -> str:
    """The public key (``O...``, ``A...``, ``U...``) of ``seed``, which must be of ``kind``."""
    return str(_pair(seed, kind).public_key.decode())


def _pair(seed: str, kind: KeyKind) -> Any:
    if not seed.startswith(_SEED_START[kind]):
        raise ConfigError(f"not an {kind} nkey seed")  # the seed itself is never shown
    try:
        return nkeys.from_seed(bytearray(seed.encode()))
    except nkeys.NkeysError as exc:
        raise ConfigError(f"malformed {kind} nkey seed") from exc


# -- claims: nats-server's field names; defaults are its zero values, all sent -----------


class ResponsePermission(msgspec.Struct, frozen=True, kw_only=True):
    """Replies to requests the user received: at most ``max`` each, for ``ttl`` ns."""

    max: int = 1
    ttl: int = 0


class OperatorFields(msgspec.Struct, frozen=True, kw_only=True):
    system_account: str = ""
    signing_keys: tuple[str, ...] = ()
    type: str = "operator"
    version: int = 2


class AccountLimits(msgspec.Struct, frozen=True, kw_only=True):
    """An account's limits; -1 is unlimited. JetStream is on when a storage limit is not 0."""

    subs: int = -1
    data: int = -1
    payload: int = -1
    imports: int = -1
    exports: int = -1
    wildcards: bool = True
    conn: int = -1
    leaf: int = -1
    mem_storage: int = 0
    disk_storage: int = 0
    streams: int = 0
    consumer: int = 0


class AccountFields(msgspec.Struct, frozen=True, kw_only=True):
    limits: AccountLimits = AccountLimits()
    signing_keys: tuple[str, ...] = ()
    revocations: dict[str, int] = {}  # user public key -> JWTs issued up to then are void
    type: str = "account"
    version: int = 2


class UserFields(msgspec.Struct, frozen=True, kw_only=True):
    pub: Permission = Permission()
    sub: Permission = Permission()
    resp: ResponsePermission | None = None
    subs: int = -1
    data: int = -1
    payload: int = -1
    issuer_account: str = ""  # set when a signing key, not the account, signs
    type: str = "user"
    version: int = 2


class Claims(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    sub: str  # the public key the JWT is about
    name: str
    iat: int = 0
    exp: int = 0  # 0: never expires
    iss: str = ""
    jti: str = ""
    nats: OperatorFields | AccountFields | UserFields


def encode(claims: Claims, *, signer_seed: str, signer_kind: KeyKind) -> str:
    """``claims`` issued now by ``signer_seed``'s key, as a signed JWT."""
    signer = _pair(signer_seed, signer_kind)
    issued = msgspec.structs.replace(
        claims, iss=signer.public_key.decode(), iat=claims.iat or int(time.time()), jti=""
    )
    body = _encode.encode(issued)
    # A unique id, as nsc makes it (base32 of a hash of the claims without one).
    jti = base64.b32encode(hashlib.sha256(body).digest()).decode().rstrip("=")
    head = _b64(_encode.encode(_HEADER))
    payload = _b64(_encode.encode(msgspec.structs.replace(issued, jti=jti)))
    signature = signer.sign(f"{head}.{payload}".encode())
    return f"{head}.{payload}.{_b64(bytes(signature))}"


def sign(seed: str, data: bytes) -> str:
    """``data`` signed by a user ``seed``: the ed25519 signature, base64url unpadded (how a
    device signs its enrollment and renewal requests)."""
    return _b64(bytes(_pair(seed, "user").sign(data)))


def verify_signature(key: str, data: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64url, unpadded) is ``key``'s (a user public key) over
    ``data``. Total: a malformed key or signature is False, never an exception."""
    if not key.startswith("U") or len(key) != 56 or len(signature) != 86:
        return False
    try:
        decoded = base64.b32decode(key + "=" * (-len(key) % 8))
        raw_sig = base64.urlsafe_b64decode(signature + "==")
    except ValueError:  # binascii.Error is one
        return False
    # A public key is <prefix byte><32 bytes><CRC-16 of both, little endian> (nkeys' form).
    body, crc = decoded[:-2], decoded[-2:]
    if len(body) != 33 or body[0] != nkeys.PREFIX_BYTE_USER or nkeys.crc16_checksum(body) != crc:
        return False
    try:
        nacl.signing.VerifyKey(body[1:]).verify(data, raw_sig)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


def read_unverified(token: str) -> dict[str, Any]:
    """The claims of a JWT, *not verified* (nats-server verifies): for tools and tests."""
    try:
        _, payload, _ = token.split(".")
        claims = msgspec.json.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, msgspec.DecodeError) as exc:
        raise ConfigError("not a JWT") from exc
    if not isinstance(claims, dict):
        raise ConfigError("not a JWT: its claims are not an object")
    return claims


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
