"""podman's logs body (framed or raw, any bytes) read into short, clean lines."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from fleet.runtime.podman.logs import MAX_LINE_CHARS, read_log_lines


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">B3xI", stream, len(payload)) + payload


def test_framed_output_in_order_and_tailed() -> None:
    body = frame(1, b"one\n") + frame(2, b"two\nthree\n") + frame(1, b"four\n")
    assert read_log_lines(body, tail=3) == ["two", "three", "four"]


def test_raw_output_of_a_tty_container() -> None:
    assert read_log_lines(b"plain\r\nlines\n", tail=5) == ["plain", "lines"]


def test_control_characters_and_long_lines_are_made_safe() -> None:
    body = frame(1, b"\x1b[31mred\x1b[0m\x00\xff\n" + b"x" * 10_000 + b"\n")
    red, long = read_log_lines(body, tail=5)
    assert red == "?[31mred?[0m?\ufffd"
    assert len(long) == MAX_LINE_CHARS


@given(st.binary(max_size=2000), st.integers(min_value=-1, max_value=10))
def test_any_bytes_give_clean_lines(data: bytes, tail: int) -> None:
    lines = read_log_lines(data, tail=tail)
    assert len(lines) <= max(tail, 0)
    for line in lines:
        assert line
        assert len(line) <= MAX_LINE_CHARS
        assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in line)
