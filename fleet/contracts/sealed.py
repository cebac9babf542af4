"""The envelope of a value sealed to one device's key: the only form a secret takes on the bus.

Why it exists: a Secret's bytes (a file's content, registry credentials) must reach one
device without nats-server's storage, its mirrors or any other device ever holding them
in clear (issue 14, docs/contracts.md "Sealed values"). The operator seals each value
to the receiving device's enrollment key; only that device's seed opens it. The envelope
is versioned, so an agent in another language can implement it and a later format can
come without misreading this one::

    {"sealed": "nacl-box-v1", "data": "<standard base64, padded>"}

``nacl-box-v1``: ``data`` is libsodium's ``crypto_box_seal`` of the plaintext to the
curve25519 public key converted (``crypto_sign_ed25519_pk_to_curve25519``) from the
device's ed25519 key (the 32 bytes inside its nkey ``U...`` public key). That is an
ephemeral curve25519 public key (32 bytes), then the XSalsa20-Poly1305 box (16 bytes of
tag, then the ciphertext); 48 bytes longer than the plaintext.

This module holds the shape and its bounds only; sealing and opening are
:mod:`fleet.runtime.sealing` (the crypto library is an outside client). Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Final

import msgspec

from fleet.errors import ContractError

SEALED_FORMAT: Final = "nacl-box-v1"
SEALED_FORMATS: Final[tuple[str, ...]] = (SEALED_FORMAT,)
SEAL_OVERHEAD: Final = 48
"""Bytes ``nacl-box-v1`` adds to a plaintext (ephemeral key and tag)."""
MAX_SEALED_PLAINTEXT: Final = 16 * 1024
"""The largest value one envelope holds (a file, a registry credential)."""
MAX_SEALED_CHARS: Final = 4 * ((MAX_SEALED_PLAINTEXT + SEAL_OVERHEAD + 2) // 3)
_B64_PATTERN: Final = r"^[A-Za-z0-9+/]*={0,2}$"


class SealedValue(msgspec.Struct, frozen=True, kw_only=True):
    """A value only the device it was sealed for can open (see the module doc)."""

    sealed: Annotated[
        str,
        msgspec.Meta(
            description="The envelope's format; this release knows 'nacl-box-v1'.",
            extra_json_schema={"enum": list(SEALED_FORMATS)},
        ),
    ]
    data: Annotated[
        str,
        msgspec.Meta(
            description="Standard base64 (padded) of crypto_box_seal's output.",
            extra_json_schema={"pattern": _B64_PATTERN, "maxLength": MAX_SEALED_CHARS},
        ),
    ]

    def __post_init__(self) -> None:
        if self.sealed not in SEALED_FORMATS:
            raise ContractError(
                f"sealed must be one of {SEALED_FORMATS} (this agent's formats), "
                f"got {str(self.sealed)[:40]!r}",
                field="sealed",
            )
        if not isinstance(self.data, str) or len(self.data) > MAX_SEALED_CHARS:
            raise ContractError(
                f"data must be base64 of at most {MAX_SEALED_CHARS} characters", field="data"
            )
        if len(self.data) < 4 * ((SEAL_OVERHEAD + 2) // 3) or len(self.data) % 4:
            raise ContractError(
                "data is too short or not padded base64: not a sealed value", field="data"
            )

    def ciphertext(self) -> bytes:
        """The sealed bytes; :class:`ContractError` naming ``data`` if not base64."""
        try:
            return base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ContractError("data is not standard base64", field="data") from exc

    @staticmethod
    def of(ciphertext: bytes) -> SealedValue:
        return SealedValue(sealed=SEALED_FORMAT, data=base64.b64encode(ciphertext).decode())
