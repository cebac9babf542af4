"""The examples in docs/contracts.md are real: each decodes and satisfies the schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fleet.contracts import (
    decode_heartbeat,
    decode_info,
    decode_score,
    decode_state,
    encode_heartbeat,
    encode_info,
    encode_score,
    encode_state,
    score_hash,
)
from fleet.contracts.schema import wire_schema

DOC = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"
EXAMPLE = re.compile(r"<!-- example: (?P<bucket>[a-z-]+) -->\s*```json\n(?P<json>.*?)```", re.S)
CODECS: dict[str, tuple[Any, Any]] = {
    "desired-state": (decode_score, encode_score),
    "device-state": (decode_state, encode_state),
    "device-info": (decode_info, encode_info),
    "device-heartbeat": (decode_heartbeat, encode_heartbeat),
}
EXAMPLES = [(m["bucket"], m["json"]) for m in EXAMPLE.finditer(DOC.read_text(encoding="utf-8"))]


def test_every_bucket_has_an_example() -> None:
    assert {bucket for bucket, _ in EXAMPLES} == set(CODECS)


@pytest.mark.parametrize(("bucket", "text"), EXAMPLES)
def test_example_decodes_and_matches_the_schema(bucket: str, text: str) -> None:
    decode, encode = CODECS[bucket]
    value = decode(text.encode())
    assert decode(encode(value)) == value
    schema = wire_schema()
    ref = schema["buckets"][bucket]["value"]["$ref"]
    jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": ref}).validate(
        json.loads(text)
    )


def test_documented_hash_example_holds() -> None:
    text = DOC.read_text(encoding="utf-8")
    canonical = '{"containers":[{"image":"b","name":"a"}],"type":"podman"}'
    assert canonical in text
    assert f"`{score_hash(decode_score(canonical.encode()))}`" in text
