"""Bad bytes are refused with one error type that says which field was wrong."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from fleet.contracts import convert_score, decode_heartbeat, decode_info, decode_score, decode_state
from fleet.errors import ContractError, InvalidName
from tests.scores import podman

from . import samples


def _with(base: Callable[[], dict[str, Any]], path: str, value: Any) -> bytes:
    """``base()`` with the value at dotted ``path`` replaced (``...`` deletes it)."""
    payload = copy.deepcopy(base())
    *parents, last = path.split(".")
    node: Any = payload
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is ...:
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return samples.dumps(payload)


SCORE, STATE, INFO, BEAT = (
    samples.score_json,
    samples.state_json,
    samples.info_json,
    samples.heartbeat_json,
)
WEB = "containers.0"

# (decoder, payload, expected .field, text the message must contain)
SCORE_CASES = [
    (_with(SCORE, "type", ...), "type", "missing required field `type`"),
    (_with(SCORE, "type", "docker"), "type", "'docker'"),
    (_with(SCORE, "type", 1), "type", "Expected `str`"),
    (_with(SCORE, "containers", []), "containers", "at least one container"),
    (_with(SCORE, "containers", ...), "containers", "missing required field"),
    (_with(SCORE, "containers", {"name": "a"}), "containers", "Expected `array`"),
    (_with(SCORE, f"{WEB}.name", "Web"), "containers[0].name", "'Web'"),
    (_with(SCORE, f"{WEB}.name", "a" * 64), "containers[0].name", "DNS-1123"),
    (_with(SCORE, f"{WEB}.name", "-a"), "containers[0].name", "'-a'"),
    (_with(SCORE, f"{WEB}.name", ...), "containers[0].name", "missing required field `name`"),
    (_with(SCORE, "containers.1.name", "web"), "containers[1].name", "appears twice"),
    (_with(SCORE, f"{WEB}.image", ""), "containers[0].image", "non-empty"),
    (_with(SCORE, f"{WEB}.image", "busy box"), "containers[0].image", "'busy box'"),
    (_with(SCORE, f"{WEB}.image", None), "containers[0].image", "Expected `str`"),
    (_with(SCORE, f"{WEB}.command", "httpd -f"), "containers[0].command", "Expected `array"),
    (_with(SCORE, f"{WEB}.command", [1]), "containers[0].command[0]", "Expected `str`"),
    (_with(SCORE, f"{WEB}.env", {"A=B": "x"}), "containers[0].env", "'A=B'"),
    (_with(SCORE, f"{WEB}.env", {"": "x"}), "containers[0].env", "''"),
    (_with(SCORE, f"{WEB}.env", {"A": 1}), "containers[0].env[...]", "Expected `str`"),
    (
        _with(SCORE, f"{WEB}.restart_policy", "sometimes"),
        "containers[0].restart_policy",
        "sometimes",
    ),
    (_with(SCORE, f"{WEB}.ports.0.host_port", 0), "containers[0].ports[0].host_port", "got 0"),
    (_with(SCORE, f"{WEB}.ports.0.host_port", 65536), "containers[0].ports[0].host_port", "65536"),
    (
        _with(SCORE, f"{WEB}.ports.0.container_port", -1),
        "containers[0].ports[0].container_port",
        "-1",
    ),
    (_with(SCORE, f"{WEB}.ports.0.host_port", "80"), "containers[0].ports[0].host_port", "`int`"),
    (_with(SCORE, f"{WEB}.ports.0.host_port", True), "containers[0].ports[0].host_port", "`int`"),
    (_with(SCORE, f"{WEB}.ports.0.host_port", 1.5), "containers[0].ports[0].host_port", "`int`"),
    (_with(SCORE, f"{WEB}.ports.0.protocol", "sctp"), "containers[0].ports[0].protocol", "sctp"),
]
STATE_CASES = [
    (_with(STATE, "device_id", "pi.01"), "device_id", "'pi.01'"),
    (_with(STATE, "device_id", ""), "device_id", "invalid device id ''"),
    (_with(STATE, "device_id", 7), "device_id", "Expected `str`"),
    (_with(STATE, "device_id", ...), "device_id", "missing required field"),
    (_with(STATE, "deployment", "Web"), "deployment", "'Web'"),
    (_with(STATE, "deployment", "a" * 64), "deployment", "DNS-1123"),
    (_with(STATE, "phase", "running"), "phase", "'running'"),
    (_with(STATE, "phase", None), "phase", "phase"),
    (_with(STATE, "desired_revision", -1), "desired_revision", "got -1"),
    (_with(STATE, "desired_revision", "3"), "desired_revision", "`int`"),
    (_with(STATE, "message", ...), "message", "missing required field `message`"),
    (_with(STATE, "message", 5), "message", "Expected `str | null`"),
    (_with(STATE, "updated_at", "2025-03-01T12:30:05"), "updated_at", "2025-03-01T12:30:05"),
    (_with(STATE, "updated_at", "yesterday"), "updated_at", "datetime"),
    (_with(STATE, "updated_at", 1700000000), "updated_at", "Expected `datetime`"),
]
INFO_CASES = [
    (_with(INFO, "device_id", "pi 01"), "device_id", "'pi 01'"),
    (_with(INFO, "labels", {"bad key": "x"}), "labels", "'bad key'"),
    (_with(INFO, "labels", {"site": "not ok"}), "labels", "'not ok'"),
    (_with(INFO, "labels", {"site": 1}), "labels[...]", "Expected `str`"),
    (_with(INFO, "labels", ["site"]), "labels", "Expected `object`"),
    (_with(INFO, "inventory.cpus", 0), "inventory.cpus", "got 0"),
    (_with(INFO, "inventory.memory_bytes", -5), "inventory.memory_bytes", "-5"),
    (_with(INFO, "inventory.hostname", ...), "inventory.hostname", "hostname"),
    (_with(INFO, "inventory", None), "inventory", "Expected `object`"),
    (_with(INFO, "agent_version", ...), "agent_version", "agent_version"),
    (_with(INFO, "updated_at", "2025-03-01"), "updated_at", "datetime"),
]
HEARTBEAT_CASES = [
    (_with(BEAT, "device_id", "pi>"), "device_id", "'pi>'"),
    (_with(BEAT, "device_id", "pi*"), "device_id", "'pi*'"),
    (_with(BEAT, "seq", -1), "seq", "got -1"),
    (_with(BEAT, "seq", None), "seq", "`int`"),
    (_with(BEAT, "at", ...), "at", "missing required field `at`"),
    (_with(BEAT, "health", {"pulls": -1}), "health.pulls", ">= 0"),
    (_with(BEAT, "health", {"drift_repairs": "3"}), "health.drift_repairs", "`int`"),
    (_with(BEAT, "health", {"reconciles": 2**64}), "health.reconciles", "<= "),
    (_with(BEAT, "health", [1, 2]), "health", "`object | null`"),
]
NOT_JSON = [b"", b"{", b"not json", b"\xff\xfe", b'{"a": 1,}', b"null"]
CASES = (
    [(decode_score, *case) for case in SCORE_CASES]
    + [(decode_state, *case) for case in STATE_CASES]
    + [(decode_info, *case) for case in INFO_CASES]
    + [(decode_heartbeat, *case) for case in HEARTBEAT_CASES]
)


@pytest.mark.parametrize(("decode", "data", "field", "text"), CASES)
def test_bad_field_is_named(decode: Any, data: bytes, field: str, text: str) -> None:
    with pytest.raises(ContractError) as caught:
        decode(data)
    error = caught.value
    assert error.field == field
    assert f"`{field}`" in str(error)
    assert text in str(error)
    assert isinstance(error, ValueError)


def test_duplicate_host_port_names_the_second_one() -> None:
    with pytest.raises(ContractError) as caught:
        decode_score(_with(SCORE, f"{WEB}.ports.1", {"host_port": 8080, "container_port": 81}))
    assert caught.value.field == "containers[0].ports[1].host_port"
    assert "8080/tcp" in str(caught.value)


def test_same_host_port_on_other_protocol_is_fine() -> None:
    data = _with(
        SCORE, f"{WEB}.ports.1", {"host_port": 8080, "container_port": 80, "protocol": "udp"}
    )
    assert podman(data).containers[0].ports is not None


@pytest.mark.parametrize("decode", [decode_score, decode_state, decode_info, decode_heartbeat])
@pytest.mark.parametrize("data", NOT_JSON)
def test_bytes_that_are_not_a_json_object_are_refused(decode: Any, data: bytes) -> None:
    with pytest.raises(ContractError) as caught:
        decode(data)
    assert caught.value.field is None


@pytest.mark.parametrize("decode", [decode_score, decode_state, decode_info, decode_heartbeat])
def test_wrong_top_level_shape_is_refused(decode: Any) -> None:
    for data in [b"[]", b'"x"', b"1", b"{}"]:
        with pytest.raises(ContractError):
            decode(data)


def test_invalid_names_keep_their_error_kind() -> None:
    with pytest.raises(InvalidName):
        decode_state(_with(STATE, "device_id", "a.b"))
    with pytest.raises(InvalidName):
        decode_score(_with(SCORE, f"{WEB}.name", "A"))


def test_decode_errors_chain_the_library_error() -> None:
    with pytest.raises(ContractError) as caught:
        decode_heartbeat(b"{")
    assert caught.value.__cause__ is not None


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"containers": []}, "type"),
        ([], None),
        ("podman", None),
        ({"type": "podman", "containers": [{"name": "a"}]}, "containers[0].image"),
        ({"type": "podman", "containers": [{"name": "A", "image": "b"}]}, "containers[0].name"),
    ],
)
def test_convert_score_refuses_bad_objects(obj: object, field: str | None) -> None:
    with pytest.raises(ContractError) as caught:
        convert_score(obj)
    assert caught.value.field == field
