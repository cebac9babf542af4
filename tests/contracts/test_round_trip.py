"""Every wire type survives encode -> decode, matches its documented JSON, and ignores
fields it does not know (so newer writers can add fields)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from fleet.contracts import (
    ContainerSpec,
    DeploymentName,
    DeploymentState,
    DeviceId,
    HeartbeatPayload,
    Phase,
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
)
from tests.scores import podman

from . import samples

CASES: list[tuple[str, Callable[[], Any], Callable[[], dict[str, Any]], Any, Any]] = [
    ("score", samples.score, samples.score_json, encode_score, decode_score),
    ("state", samples.state, samples.state_json, encode_state, decode_state),
    ("info", samples.info, samples.info_json, encode_info, decode_info),
    ("heartbeat", samples.heartbeat, samples.heartbeat_json, encode_heartbeat, decode_heartbeat),
]
IDS = [case[0] for case in CASES]


@pytest.mark.parametrize(("_name", "build", "as_json", "encode", "decode"), CASES, ids=IDS)
def test_round_trip(_name: str, build: Any, as_json: Any, encode: Any, decode: Any) -> None:
    value = build()
    data = encode(value)
    assert isinstance(data, bytes)
    assert decode(data) == value
    assert json.loads(data) == as_json()


@pytest.mark.parametrize(("_name", "build", "as_json", "encode", "decode"), CASES, ids=IDS)
def test_json_from_another_language_decodes(
    _name: str, build: Any, as_json: Any, encode: Any, decode: Any
) -> None:
    data = samples.dumps(as_json())
    assert decode(data) == build()
    assert decode(bytearray(data)) == build()
    assert decode(memoryview(data)) == build()


@pytest.mark.parametrize(("_name", "build", "as_json", "encode", "decode"), CASES, ids=IDS)
def test_unknown_fields_are_ignored(
    _name: str, build: Any, as_json: Any, encode: Any, decode: Any
) -> None:
    payload = as_json()
    payload["added_in_v2"] = {"anything": [1, 2, 3]}
    assert decode(samples.dumps(payload)) == build()


def test_unknown_fields_inside_nested_structs_are_ignored() -> None:
    payload = samples.score_json()
    payload["containers"][0]["gpus"] = {"count": 1}  # a field of some later release
    payload["containers"][0]["ports"][0]["host_ip"] = "0.0.0.0"
    info = samples.info_json()
    info["inventory"]["gpu"] = "none"
    assert decode_score(samples.dumps(payload)) == samples.score()
    assert decode_info(samples.dumps(info)) == samples.info()


def test_decoded_names_are_validated_types() -> None:
    state = decode_state(samples.dumps(samples.state_json()))
    assert type(state.device_id) is DeviceId
    assert type(state.deployment) is DeploymentName
    assert type(state.phase) is Phase
    assert type(decode_info(encode_info(samples.info())).device_id) is DeviceId
    assert type(decode_heartbeat(encode_heartbeat(samples.heartbeat())).device_id) is DeviceId


def test_score_defaults_apply_when_optional_fields_are_omitted() -> None:
    data = b'{"type": "podman", "containers": [{"name": "a", "image": "busybox"}]}'
    container = podman(data).containers[0]
    assert container == ContainerSpec(name="a", image="busybox")
    assert (container.command, container.env, container.ports) == (None, None, None)
    assert container.restart_policy == "always"
    assert encode_score(decode_score(data)) == (
        b'{"type":"podman","containers":[{"name":"a","image":"busybox"}]}'
    )


def test_port_protocol_defaults_to_tcp() -> None:
    data = b'{"type":"podman","containers":[{"name":"a","image":"b",'
    data += b'"ports":[{"host_port":1,"container_port":65535}]}]}'
    port = podman(data).containers[0].ports
    assert port is not None
    assert port[0].protocol == "tcp"


def test_timestamps_are_encoded_in_utc_with_z_and_other_offsets_are_converted() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    beat = HeartbeatPayload(
        device_id=DeviceId.try_new("d"), at=dt.datetime(2025, 1, 1, 2, 0, tzinfo=plus_two), seq=0
    )
    assert beat.at == dt.datetime(2025, 1, 1, 0, 0, tzinfo=dt.UTC)
    assert beat.at.tzinfo is dt.UTC
    assert b'"at":"2025-01-01T00:00:00Z"' in encode_heartbeat(beat)
    decoded = decode_heartbeat(b'{"device_id":"d","at":"2025-01-01T02:00:00+02:00","seq":0}')
    assert decoded == beat
    assert decoded.at.tzinfo is dt.UTC
    utc_offset = decode_heartbeat(b'{"device_id":"d","at":"2025-01-01T00:00:00+00:00","seq":0}')
    assert utc_offset == beat


def test_message_is_nullable() -> None:
    payload = samples.state_json() | {"message": None, "phase": "Running"}
    state = decode_state(samples.dumps(payload))
    assert state.message is None
    assert json.loads(encode_state(state))["message"] is None


def test_structs_are_frozen() -> None:
    state = samples.state()
    with pytest.raises(AttributeError):
        state.phase = Phase.RUNNING  # type: ignore[misc]


def test_structs_built_from_plain_strings_hold_validated_names() -> None:
    state = DeploymentState(
        device_id="pi-01",  # type: ignore[arg-type]
        deployment="web",  # type: ignore[arg-type]
        phase="Running",  # type: ignore[arg-type]
        desired_revision=0,
        message=None,
        updated_at=samples.AT,
    )
    assert (type(state.device_id), type(state.deployment), type(state.phase)) == (
        DeviceId,
        DeploymentName,
        Phase,
    )
    assert msgspec.structs.asdict(state)["phase"] is Phase.RUNNING


def test_convert_score_validates_an_already_parsed_object() -> None:
    assert convert_score(samples.score_json()) == samples.score()
    assert isinstance(convert_score(samples.score_json()), PodmanScore)


def test_timestamps_accept_any_rfc3339_precision() -> None:
    for text in ["2025-03-01T12:30:05.123Z", "2025-03-01T12:30:05.123000Z"]:
        payload = samples.heartbeat_json() | {"at": text}
        assert decode_heartbeat(samples.dumps(payload)) == samples.heartbeat()
