"""The lean client's parser: same operations whatever the split of the byte stream."""

from __future__ import annotations

import random
from typing import Any

import pytest

from loadtest.natsmsg import parse_headers
from loadtest.natsparse import Parser, ProtocolError


class Recorder:
    """A parser sink that writes down every operation it is called with."""

    def __init__(self) -> None:
        self.ops: list[tuple[Any, ...]] = []

    def on_msg(
        self, subject: bytes, sid: int, reply: bytes, header: bytes | None, payload: bytes
    ) -> None:
        self.ops.append(("MSG", subject, sid, reply, header, payload))

    def on_info(self, info: dict[str, Any]) -> None:
        self.ops.append(("INFO", info))

    def on_ping(self) -> None:
        self.ops.append(("PING",))

    def on_pong(self) -> None:
        self.ops.append(("PONG",))

    def on_err(self, message: str) -> None:
        self.ops.append(("ERR", message))


BIG = bytes(range(256)) * 4096  # 1 MiB with every byte value, CRLFs included
HDR = b"NATS/1.0\r\nKV-Operation: DEL\r\nNats-Sequence: 7\r\n\r\n"
STREAM = b"".join(
    [
        b'INFO {"server_id":"X","max_payload":1048576,"headers":true}\r\n',
        b"+OK\r\n",
        b"PING\r\n",
        b"MSG a.b 1 5\r\nhello\r\n",
        b"MSG a.b 1 _INBOX.x.1 0\r\n\r\n",
        b"MSG tricky 2 11\r\nMSG x 1 2\r\n\r\n",  # a payload that looks like a line
        b"HMSG _INBOX.r.1 3 16 16\r\nNATS/1.0 503\r\n\r\n\r\n",
        b"HMSG kv.k 4 $JS.ACK.S.C.1.7.7.1700000000000000000.0 %d %d\r\n%bvalue\r\n"
        % (len(HDR), len(HDR) + 5, HDR),
        b"MSG big 5 %d\r\n%b\r\n" % (len(BIG), BIG),
        b"PONG\r\n",
        b"-ERR 'Permissions Violation for Publish to foo'\r\n",
    ]
)
EXPECTED: list[tuple[Any, ...]] = [
    ("INFO", {"server_id": "X", "max_payload": 1048576, "headers": True}),
    ("PING",),
    ("MSG", b"a.b", 1, b"", None, b"hello"),
    ("MSG", b"a.b", 1, b"_INBOX.x.1", None, b""),
    ("MSG", b"tricky", 2, b"", None, b"MSG x 1 2\r\n"),
    ("MSG", b"_INBOX.r.1", 3, b"", b"NATS/1.0 503\r\n\r\n", b""),
    ("MSG", b"kv.k", 4, b"$JS.ACK.S.C.1.7.7.1700000000000000000.0", HDR, b"value"),
    ("MSG", b"big", 5, b"", None, BIG),
    ("PONG",),
    ("ERR", "Permissions Violation for Publish to foo"),
]


def parse_in_chunks(stream: bytes, sizes: list[int] | None) -> Recorder:
    rec = Recorder()
    parser = Parser(rec)
    if sizes is None:
        parser.feed(stream)
    else:
        pos = 0
        for size in sizes:
            parser.feed(stream[pos : pos + size])
            pos += size
        assert pos >= len(stream)
    assert parser.buffered == 0
    return rec


def test_a_whole_stream_in_one_read() -> None:
    assert parse_in_chunks(STREAM, None).ops == EXPECTED


def test_byte_by_byte_gives_the_same_operations() -> None:
    small = STREAM[: STREAM.index(b"MSG big")] + b"PONG\r\n"
    expected = [op for op in EXPECTED if op[:2] != ("MSG", b"big")][:-1]
    assert parse_in_chunks(small, [1] * len(small)).ops == expected


@pytest.mark.parametrize("seed", range(20))
def test_random_chunk_sizes_give_the_same_operations(seed: int) -> None:
    rng = random.Random(seed)
    sizes: list[int] = []
    while sum(sizes) < len(STREAM):
        sizes.append(rng.choice([1, 2, 3, 7, 64, 1500, 65536, 200_000]))
    assert parse_in_chunks(STREAM, sizes).ops == EXPECTED


def test_a_read_ending_between_payload_and_its_crlf_waits_for_the_crlf() -> None:
    rec = Recorder()
    parser = Parser(rec)
    parser.feed(b"MSG a 1 2\r\nhi")
    parser.feed(b"\r")
    assert rec.ops == []
    parser.feed(b"\nPING\r\n")
    assert rec.ops == [("MSG", b"a", 1, b"", None, b"hi"), ("PING",)]


@pytest.mark.parametrize(
    "garbage",
    [
        b"HELLO world\r\n",
        b"MSG a 1 2\r\nhiXX",  # payload not followed by CRLF
        b"MSG a b 2\r\nhi\r\n",  # sid not a number
        b"MSG a 1 x y z 2\r\n",  # too many fields
        b"HMSG a 1 9 3\r\n",  # header larger than the message
        b"INFO [1]\r\n",
        b"X" * 70_000,  # no CRLF at all
    ],
)
def test_garbage_raises_a_protocol_error_naming_it(garbage: bytes) -> None:
    with pytest.raises(ProtocolError):
        Parser(Recorder()).feed(garbage)


def test_headers_with_a_status_and_a_description() -> None:
    assert parse_headers(b"NATS/1.0 404 Message Not Found\r\n\r\n") == {
        "Status": "404",
        "Description": "Message Not Found",
    }
    assert parse_headers(b"NATS/1.0 503\r\n\r\n") == {"Status": "503"}
    assert parse_headers(b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Stream: 4\r\n\r\n") == {
        "Status": "100",
        "Description": "Idle Heartbeat",
        "Nats-Last-Stream": "4",
    }


def test_headers_key_values_are_stripped_and_bad_lines_skipped() -> None:
    raw = b"NATS/1.0\r\nNats-Sequence: 12\r\nKV-Operation:DEL\r\nno colon\r\nBad Name: x\r\n\r\n"
    assert parse_headers(raw) == {"Nats-Sequence": "12", "KV-Operation": "DEL"}
    assert parse_headers(b"NATS/1.0\r\n\r\n") is None
