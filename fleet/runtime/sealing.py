"""Sealing a value to a device's enrollment key, and opening it with the device's seed.

Why it exists: the one implementation of ``nacl-box-v1`` (:mod:`fleet.contracts.sealed`,
docs/contracts.md "Sealed values"), over PyNaCl (libsodium): the operator seals a Secret's
bytes to the receiving device's nkey public key (``U...``, ed25519) converted to
curve25519; the agent opens it with its seed (``identity.seed``) converted the same way.
A sealed box is anonymous (an ephemeral sender key per value), so sealing the same bytes
twice gives two different envelopes: whoever compares them must compare what they open to.

What it must never do: log, print or put in an error a plaintext or a seed; accept a
key that is not a user nkey with a valid checksum.
"""

from __future__ import annotations

import base64
import binascii

import nacl.bindings
import nacl.exceptions
import nacl.public
import nkeys

from fleet.contracts.sealed import MAX_SEALED_PLAINTEXT, SEAL_OVERHEAD, SealedValue
from fleet.errors import ContractError, PermanentError

_USER_KEY_LENGTH = 56


class SealError(PermanentError):
    """A value that cannot be sealed (a malformed key) or opened (another key, corrupt)."""


def _ed25519_public(public_key: str) -> bytes:
    """The 32 ed25519 bytes inside a user nkey ``U...``; :class:`SealError` otherwise."""
    if (
        not isinstance(public_key, str)
        or len(public_key) != _USER_KEY_LENGTH
        or not public_key.startswith("U")
    ):
        raise SealError("not a user nkey public key (U..., 56 characters)")
    try:
        decoded = base64.b32decode(public_key + "=" * (-len(public_key) % 8))
    except (binascii.Error, ValueError) as exc:
        raise SealError("not a user nkey public key (not base32)") from exc
    body, crc = decoded[:-2], decoded[-2:]
    if len(body) != 33 or body[0] != nkeys.PREFIX_BYTE_USER or nkeys.crc16_checksum(body) != crc:
        raise SealError("not a user nkey public key (bad prefix or checksum)")
    return bytes(body[1:])


def seal(plaintext: bytes, *, public_key: str) -> SealedValue:
    """``plaintext`` sealed to the device whose enrollment key is ``public_key``."""
    if len(plaintext) > MAX_SEALED_PLAINTEXT:
        raise SealError(f"{len(plaintext)} bytes, at most {MAX_SEALED_PLAINTEXT} can be sealed")
    try:
        curve = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(_ed25519_public(public_key))
        box = nacl.public.SealedBox(nacl.public.PublicKey(curve))
        return SealedValue.of(bytes(box.encrypt(plaintext)))
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise SealError("the key is not a usable ed25519 point") from exc


class Opener:
    """Opens values sealed to one device: built from its nkey seed (kept, never shown)."""

    __slots__ = ("_box", "public_key")

    def __init__(self, seed: str) -> None:
        if not isinstance(seed, str) or not seed.startswith("SU"):
            raise SealError("not a user nkey seed")  # the seed itself is never shown
        try:
            prefix, raw = nkeys.decode_seed(bytearray(seed.encode()))
            public_key = str(nkeys.from_seed(bytearray(seed.encode())).public_key.decode())
        except (nkeys.NkeysError, ValueError) as exc:
            raise SealError("malformed user nkey seed") from exc
        if prefix != nkeys.PREFIX_BYTE_USER or len(raw) != 32:
            raise SealError("not a user nkey seed")
        raw_seed = bytes(raw)
        ed_secret = raw_seed + _ed25519_public(public_key)
        curve = nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(ed_secret)
        self._box = nacl.public.SealedBox(nacl.public.PrivateKey(curve))
        self.public_key = public_key

    def __repr__(self) -> str:  # never the seed
        return f"Opener({self.public_key!r})"

    def open(self, value: SealedValue) -> bytes:
        """The plaintext; :class:`SealError` if it was sealed to another key or is corrupt."""
        try:
            ciphertext = value.ciphertext()
        except ContractError as exc:
            raise SealError(str(exc)) from exc
        if len(ciphertext) < SEAL_OVERHEAD:
            raise SealError("too short to be a sealed value")
        try:
            return bytes(self._box.decrypt(ciphertext))
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise SealError(
                f"does not open with this device's key {self.public_key} (sealed to another "
                "device's key, or corrupt)"
            ) from exc
