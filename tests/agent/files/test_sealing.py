"""nacl-box-v1: a value sealed to one device's enrollment key opens with its seed only."""

from __future__ import annotations

import base64

import msgspec
import nacl.bindings
import nacl.public
import pytest

from fleet.contracts import SealedValue
from fleet.errors import ContractError
from fleet.runtime.nats.claims import new_seed, public_key
from fleet.runtime.sealing import Opener, SealError, seal

pytestmark = pytest.mark.timeout(30)


def test_a_sealed_value_opens_with_the_device_seed_only() -> None:
    seed, other = new_seed("user"), new_seed("user")
    value = seal(b"s3cret", public_key=public_key(seed, "user"))
    assert value.sealed == "nacl-box-v1"
    assert b"s3cret" not in msgspec.json.encode(value)
    assert Opener(seed).open(value) == b"s3cret"
    with pytest.raises(SealError, match="does not open with this device's key"):
        Opener(other).open(value)
    assert seal(b"s3cret", public_key=public_key(seed, "user")) != value  # ephemeral key


def test_the_documented_format_can_be_opened_without_fleet() -> None:
    """docs/contracts.md: crypto_box_seal to the ed25519 key converted to curve25519."""
    seed = new_seed("user")
    value = seal(b"hello", public_key=public_key(seed, "user"))
    import nkeys

    _, raw = nkeys.decode_seed(bytearray(seed.encode()))
    signing = nacl.bindings.crypto_sign_seed_keypair(bytes(raw))[1]
    curve = nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(signing)
    box = nacl.public.SealedBox(nacl.public.PrivateKey(curve))
    assert box.decrypt(base64.b64decode(value.data)) == b"hello"


@pytest.mark.parametrize(
    "key",
    [
        "",
        "U" + "A" * 55,
        "N" + "A" * 55,
        "not a key",
        public_key(new_seed("user"), "user")[:-1] + "A",
    ],
)
def test_a_malformed_key_is_refused(key: str) -> None:
    with pytest.raises(SealError):
        seal(b"x", public_key=key)


def test_corrupt_or_unknown_envelopes_are_refused() -> None:
    seed = new_seed("user")
    value = seal(b"x" * 10, public_key=public_key(seed, "user"))
    flipped = bytearray(base64.b64decode(value.data))
    flipped[-1] ^= 1
    with pytest.raises(SealError):
        Opener(seed).open(SealedValue.of(bytes(flipped)))
    with pytest.raises(ContractError, match="sealed must be one of"):
        SealedValue(sealed="nacl-box-v9", data=value.data)
    with pytest.raises(ContractError, match="data"):
        SealedValue(sealed="nacl-box-v1", data="abc")
    with pytest.raises(SealError, match="base64"):
        Opener(seed).open(SealedValue(sealed="nacl-box-v1", data="!" * 64 + "===="[:0]))
    assert "S" not in repr(Opener(seed)).replace("Opener", "")[:3]  # never the seed
    assert seed not in repr(Opener(seed))
