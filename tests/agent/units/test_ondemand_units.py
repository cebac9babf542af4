"""The responder's plain parts: the gate's limits, podman's stream cut into clean lines,
and lines packed into chunks that each fit the bound."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from fleet.actors.agent.ondemand.gate import Gate
from fleet.actors.agent.ondemand.logs import chunks
from fleet.contracts import DeviceId, LogsRequest, encode_answer
from fleet.contracts.ondemand import MAX_CHUNK_BYTES, MAX_LOG_LINE_CHARS
from fleet.runtime.podman.log_stream import MAX_PARTIAL_BYTES, LineSplitter


def frame(payload: bytes, stream: int = 1) -> bytes:
    return struct.pack(">B3xI", stream, len(payload)) + payload


def test_the_gate_limits_each_requester_and_all_of_them() -> None:
    gate = Gate(per_requester=(1.0, 3.0), overall=(100.0, 5.0), max_waiting=100)
    verdicts = [gate.admit("_INBOX_a", now=0.0) for _ in range(5)]
    assert verdicts == ["admit"] * 3 + ["rate-limited"] * 2
    assert [gate.admit("_INBOX_b", now=0.0) for _ in range(3)] == ["admit", "admit",
                                                                  "rate-limited"]  # fmt: skip
    assert gate.admit("_INBOX_a", now=1.0) == "admit"  # a token came back in a second


def test_the_gate_bounds_what_waits() -> None:
    gate = Gate(per_requester=(100.0, 100.0), overall=(100.0, 100.0), max_waiting=2)
    assert [gate.admit("r", now=0.0) for _ in range(3)] == ["admit", "admit", "busy"]
    gate.done()
    assert gate.admit("r", now=0.0) == "admit"


@given(st.lists(st.binary(max_size=200), max_size=20), st.integers(1, 50))
def test_frames_in_any_pieces_give_the_same_lines(payloads: list[bytes], cut: int) -> None:
    body = b"".join(frame(p) for p in payloads)
    whole = LineSplitter()
    expected = whole.feed(body) + whole.flush()
    pieces = LineSplitter()
    got = [line for i in range(0, len(body), cut) for line in pieces.feed(body[i : i + cut])]
    assert got + pieces.flush() == expected
    assert all(len(line) <= MAX_LOG_LINE_CHARS for line in got)


def test_raw_output_and_a_line_without_end_are_bounded() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"plain tty\r\n") == ["plain tty"]
    assert splitter.feed(b"y" * (10 * MAX_PARTIAL_BYTES)) == []  # held, but bounded
    assert splitter.feed(b"\nnext\n") == ["y" * (MAX_LOG_LINE_CHARS - 1) + "\u2026", "next"]


def test_lines_are_packed_into_chunks_that_fit() -> None:
    lines = ['"' * MAX_LOG_LINE_CHARS] * 500  # each doubles when encoded
    made = chunks(lines, device_id=DeviceId("d"), request=LogsRequest(deployment="web"),  # type: ignore[arg-type]
                  container="web", first_seq=3, skipped=7, done=True)  # fmt: skip
    assert len(made) > 1
    assert [c.seq for c in made] == list(range(3, 3 + len(made)))
    assert [c.done for c in made] == [False] * (len(made) - 1) + [True]
    assert [c.skipped for c in made] == [7] + [0] * (len(made) - 1)
    assert sum(len(c.lines) for c in made) == 500
    assert all(len(encode_answer(c)) <= MAX_CHUNK_BYTES for c in made)
