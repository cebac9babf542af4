"""Every decoder is total: any bytes become a valid value or a ContractError, never a crash."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.contracts import (
    DeploymentState,
    DeviceInfo,
    HeartbeatPayload,
    PodmanScore,
    convert_score,
    decode_heartbeat,
    decode_info,
    decode_score,
    decode_state,
    encode_heartbeat,
    encode_info,
    encode_score,
    encode_state,
    parse_desired_state_key,
    parse_device_heartbeat_key,
    parse_device_info_key,
    parse_device_state_key,
)
from fleet.contracts.limits import MAX_DEPTH, json_depth
from fleet.errors import ContractError

from .hostile import JSON_VALUES, KEY_TEXT, deep_object, hostile_values, nested

pytestmark = [
    pytest.mark.timeout(300),
    # The hostile values are big on purpose (a 200 KB nesting); hypothesis warns on its repr.
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DECODERS: dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bytes], type]] = {
    "desired-state": (decode_score, encode_score, PodmanScore),
    "device-state": (decode_state, encode_state, DeploymentState),
    "device-info": (decode_info, encode_info, DeviceInfo),
    "device-heartbeat": (decode_heartbeat, encode_heartbeat, HeartbeatPayload),
}


def _total(bucket: str, data: bytes) -> None:
    decode, encode, kind = DECODERS[bucket]
    message: str | None
    try:
        value = decode(data)
    except ContractError as exc:
        message = str(exc)
    else:
        message = None
    if message is not None:
        assert message, "a ContractError must say what was wrong"
        return
    assert isinstance(value, kind)
    # What decoded is valid: it encodes and decodes to itself.
    assert decode(encode(value)) == value


@pytest.mark.parametrize("bucket", sorted(DECODERS))
def test_decoders_are_total(bucket: str) -> None:
    @FUZZ
    @given(data=hostile_values(bucket))
    def check(data: bytes) -> None:
        _total(bucket, data)

    check()


@pytest.mark.parametrize("bucket", sorted(DECODERS))
@pytest.mark.parametrize(
    "data",
    [nested(1000), deep_object(1000), nested(100_000), b'{"a":' * 1000],
    ids=["arrays-1000", "objects-1000", "arrays-100000", "unclosed-1000"],
)
def test_the_values_that_killed_actors_are_contract_errors(bucket: str, data: bytes) -> None:
    decode = DECODERS[bucket][0]
    with pytest.raises(ContractError):
        decode(data)


@pytest.mark.parametrize("bucket", sorted(DECODERS))
def test_decoders_refuse_other_types_than_bytes(bucket: str) -> None:
    decode = DECODERS[bucket][0]
    for thing in (None, 1, "text", [], {}, object()):
        with pytest.raises(ContractError, match="must be bytes"):
            decode(thing)  # type: ignore[arg-type]  # not bytes, on purpose


@FUZZ
@given(value=JSON_VALUES)
def test_convert_score_is_total(value: Any) -> None:
    try:
        score = convert_score(value)
    except ContractError:
        return
    assert isinstance(score, PodmanScore)


def test_convert_score_refuses_deep_dicts() -> None:
    deep: dict[str, Any] = {"type": "podman", "containers": []}
    node = deep
    for _ in range(2000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(ContractError, match="deep"):
        convert_score(deep)


@FUZZ
@given(key=KEY_TEXT)
def test_key_parsers_are_total(key: str) -> None:
    for parse in (
        parse_desired_state_key,
        parse_device_state_key,
        parse_device_info_key,
        parse_device_heartbeat_key,
    ):
        with contextlib.suppress(ContractError):
            parse(key)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES)
def test_depth_scan_agrees_with_the_parser(value: Any) -> None:
    """The linear depth scan counts what a JSON parser would (strings may hold brackets)."""
    data = msgspec.json.encode(value)

    def depth(v: Any) -> int:
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        return 0

    assert json_depth(data) == depth(value)


@given(st.integers(min_value=0, max_value=MAX_DEPTH))
def test_values_at_the_depth_bound_are_parsed(depth: int) -> None:
    """The bound refuses nothing a parser would read at or under it (they fail the schema)."""
    with pytest.raises(ContractError) as caught:
        decode_state(nested(depth))
    assert "levels deep" not in str(caught.value)
