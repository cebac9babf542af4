"""``secret_env`` of a container: one source each, bounded, never also in ``env``; a
score without it encodes and hashes as before; an unknown field inside a source is
found; the spec hash ignores the envelope (sealing again is no change)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest

from fleet.contracts import convert_score, encode_score, score_hash
from fleet.contracts.secret_env import MAX_SECRET_ENV, MAX_SECRET_ENV_BYTES
from fleet.contracts.unknown import unknown_score_field
from fleet.errors import ContractError
from fleet.runtime.nats.claims import new_seed, public_key
from fleet.runtime.podman.port import secret_env_digest, spec_hash
from fleet.runtime.sealing import seal

pytestmark = pytest.mark.timeout(30)

KEY = public_key(new_seed("user"), "user")
REF = {"secret": {"name": "db", "key": "password"}}


def sealed(value: bytes) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(seal(value, public_key=KEY))
    return out


def score(secret_env: Any, **extra: Any) -> dict[str, Any]:
    container = {"name": "app", "image": "busybox", "secret_env": secret_env, **extra}
    return {"type": "podman", "containers": [container]}


def test_secret_env_round_trips_and_a_score_without_it_is_unchanged() -> None:
    value = score({"DB_PASSWORD": REF, "TOKEN": {"sealed": sealed(b"t")}}, env={"A": "1"})
    encoded = encode_score(convert_score(value))
    assert convert_score(msgspec.json.decode(encoded)) == convert_score(value)
    bare = {"type": "podman", "containers": [{"name": "a", "image": "b"}]}
    expected = b'{"type":"podman","containers":[{"name":"a","image":"b"}]}'
    assert encode_score(convert_score(bare)) == expected
    assert score_hash(convert_score(bare)) == "f32246d14042ac3a"  # docs/contracts.md


@pytest.mark.parametrize(
    ("secret_env", "extra", "field", "message"),
    [
        ({"X": {}}, {}, "secret_env", "exactly one of secret, sealed, got none"),
        ({"X": {**REF, "sealed": sealed(b"v")}}, {}, "secret_env", "got secret, sealed"),
        ({"X": REF}, {"env": {"X": "clear"}}, "secret_env.X", "both env and secret_env"),
        ({"A=B": REF}, {}, "secret_env", "invalid secret_env name"),
        ({"X": {"secret": {"name": "Bad_Name", "key": "k"}}}, {}, "secret_env", "name must be"),
        ({"X": {"sealed": sealed(b"v" * (MAX_SECRET_ENV_BYTES + 100))}}, {}, "secret_env",
         f"at most {MAX_SECRET_ENV_BYTES}"),
        ({f"V{i}": REF for i in range(MAX_SECRET_ENV + 1)}, {}, "secret_env",
         f"at most {MAX_SECRET_ENV}"),
    ],
)  # fmt: skip
def test_bad_secret_env_is_refused_naming_the_field(
    secret_env: Any, extra: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ContractError, match=re.escape(message)) as caught:
        convert_score(score(secret_env, **extra))
    assert (caught.value.field or "").startswith(f"containers[0].{field}")


def test_the_values_of_a_score_are_bounded_together() -> None:
    big = {"sealed": sealed(b"v" * MAX_SECRET_ENV_BYTES)}
    containers = [{"name": f"c{i}", "image": "busybox", "secret_env": {"X": big}} for i in range(3)]
    with pytest.raises(ContractError, match="secret_env values of the score"):
        convert_score({"type": "podman", "containers": containers})


def test_an_unknown_field_inside_a_source_is_found() -> None:
    value = score({"X": {**REF, "from_vault": True}})
    assert unknown_score_field(value) == "containers[0].secret_env.X.from_vault"
    assert unknown_score_field(score({"X": REF}, labels={"any": "thing"})) is None


def test_the_spec_hash_follows_the_values_not_the_envelopes() -> None:
    one = convert_score(score({"X": {"sealed": sealed(b"v1")}})).containers[0]  # type: ignore[union-attr]
    again = convert_score(score({"X": {"sealed": sealed(b"v1")}})).containers[0]  # type: ignore[union-attr]
    assert one != again  # sealing is randomised...
    same = secret_env_digest({"X": b"v1"})
    assert spec_hash(one, secret_env=same) == spec_hash(again, secret_env=same)  # ...no change
    assert spec_hash(one, secret_env=same) != spec_hash(
        one, secret_env=secret_env_digest({"X": b"v2"})
    )
    plain = convert_score(score(None)).containers[0]  # type: ignore[union-attr]
    assert spec_hash(plain) == spec_hash(plain, secret_env=same)  # no secret_env: as before
