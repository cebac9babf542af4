"""The on-demand wire (logs, describe): round trips, bounds, and hostile bytes."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.contracts import (
    DeviceId,
    LogsChunk,
    LogsRequest,
    decode_describe_request,
    decode_description,
    decode_logs_chunk,
    decode_logs_request,
    device_request_key,
    encode_answer,
    encode_request,
    parse_device_request_key,
)
from fleet.contracts.ondemand import (
    MAX_CHUNK_BYTES,
    MAX_LOG_LINE_CHARS,
    DeviceDescription,
    clean_log_line,
)
from fleet.errors import ContractError, InvalidName


def test_a_logs_request_round_trips_with_defaults() -> None:
    request = decode_logs_request(b'{"deployment": "web"}')
    assert (request.deployment, request.container, request.tail, request.follow) == (
        "web", None, 100, False,
    )  # fmt: skip
    again = LogsRequest(deployment="web", container="main", tail=5, follow=True,  # type: ignore[arg-type]
                        session="0123456789abcdef")  # fmt: skip
    assert decode_logs_request(encode_request(again)) == again


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b'{"deployment": "Web"}', "deployment"),
        (b'{"deployment": "web", "container": "a.b"}', "container"),
        (b'{"deployment": "web", "tail": 1001}', "tail"),
        (b'{"deployment": "web", "tail": true}', "tail"),
        (b'{"deployment": "web", "follow": "yes"}', "follow"),
        (b'{"deployment": "web", "session": "../x"}', "session"),
        (b"{}", "deployment"),
    ],
)
def test_a_bad_logs_request_names_its_field(data: bytes, field: str) -> None:
    with pytest.raises(ContractError) as caught:
        decode_logs_request(data)
    assert caught.value.field == field, caught.value


def test_requests_are_bounded() -> None:
    with pytest.raises(ContractError, match="too large"):
        decode_logs_request(b'{"deployment": "web", "x": "' + b"a" * 5000 + b'"}')
    with pytest.raises(ContractError, match="nests"):
        decode_logs_request(b"[" * 100 + b"]" * 100)
    assert decode_describe_request(b"") == decode_describe_request(b"{}")


@given(st.binary(max_size=300))
def test_decoding_any_bytes_is_total(data: bytes) -> None:
    for decode in (decode_logs_request, decode_describe_request, decode_logs_chunk,
                   decode_description):  # fmt: skip
        with contextlib.suppress(ContractError):  # a value, or this: nothing else
            decode(data)


def test_a_chunk_refuses_control_characters_and_long_lines() -> None:
    with pytest.raises(ContractError, match=r"lines\[1\]"):
        LogsChunk(device_id=DeviceId("d"), seq=0, lines=("ok", "\x1b[31m"))
    with pytest.raises(ContractError):
        LogsChunk(device_id=DeviceId("d"), seq=0, lines=("x" * (MAX_LOG_LINE_CHARS + 1),))
    with pytest.raises(ContractError, match="device answer"):
        encode_answer(LogsChunk(device_id=DeviceId("d"), seq=0,
                                lines=('"' * MAX_LOG_LINE_CHARS,) * 40))  # fmt: skip


@given(st.text(max_size=3000))
def test_a_cleaned_line_always_fits_a_chunk(line: str) -> None:
    clean = clean_log_line(line)
    chunk = LogsChunk(device_id=DeviceId("d"), seq=0, lines=(clean,))
    assert decode_logs_chunk(encode_answer(chunk)) == chunk
    assert len(encode_answer(chunk)) < MAX_CHUNK_BYTES


def test_a_description_round_trips() -> None:
    described = DeviceDescription(device_id=DeviceId("pi-7"), at=dt.datetime.now(dt.UTC),
                                  labels={"site": "lab"})  # fmt: skip
    assert decode_description(encode_answer(described)) == described


def test_request_keys() -> None:
    assert device_request_key(DeviceId("pi-7"), "logs") == "pi-7.logs"
    assert parse_device_request_key("pi-7.describe") == ("pi-7", "describe")
    for bad in ("pi-7.other", "logs", ".logs", "a.b.logs"):
        with pytest.raises((ContractError, InvalidName)):
            parse_device_request_key(bad)
    with pytest.raises(ContractError):
        device_request_key(DeviceId("pi-7"), "shell")  # type: ignore[arg-type]
