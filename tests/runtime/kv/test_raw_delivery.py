"""Raw subscriptions (fleet/runtime/nats/raw.py): a header block read as nats-py reads it,
total on any bytes; on a real nats-server a raw subscription gets every message in order,
beside the client's ordinary subscriptions, and nothing after it is gone."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fleet.errors import BusError
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.raw import RawSubscriber, message_of, parse_headers, raw_subscriber
from fleet.runtime.nats.subjects import DESCRIPTION, STATUS
from fleet.runtime.nats.transport import ForwardingTransport, MalformedReply, Message


def test_a_status_line_headers_and_both_are_read_as_nats_py_reads_them() -> None:
    assert parse_headers(b"NATS/1.0\r\nKV-Operation: DEL\r\n\r\n") == {"KV-Operation": "DEL"}
    assert parse_headers(b"NATS/1.0 404 No Messages\r\n\r\n") == {
        STATUS: "404",
        DESCRIPTION: "No Messages",
    }
    beat = b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 7\r\nNats-Last-Stream: 9\r\n\r\n"
    assert parse_headers(beat) == {
        STATUS: "100", DESCRIPTION: "Idle Heartbeat", "Nats-Last-Consumer": "7",
        "Nats-Last-Stream": "9",
    }  # fmt: skip
    msg = message_of(b"a.b", b"", b"x", None)
    assert msg == Message(subject="a.b", reply="", data=b"x", headers=None)


def test_odd_header_lines_are_read_as_nats_py_reads_them_not_refused() -> None:
    # Whoever writes a key chooses its headers: a block refused would be an entry the
    # consumer could never go past.
    assert parse_headers(b"NATS/1.0\r\nno colon here\r\nKV-Operation: DEL\r\n") == {
        "KV-Operation": "DEL"
    }
    assert parse_headers(b"NATS/1.0\r\n\xff: x\r\n") == {"\ufffd": "x"}


@pytest.mark.parametrize(
    "bad",
    [b"HTTP/1.1 200 OK\r\n\r\n", b"NATS/1.0\r\n" + b"k: v\r\n" * 20_000],
    ids=["not-nats", "too-big"],
)  # fmt: skip
def test_a_broken_header_block_is_a_malformed_reply(bad: bytes) -> None:
    with pytest.raises(MalformedReply):
        parse_headers(bad)
    with pytest.raises(BusError):
        message_of(b"a", b"", b"", bad)
    with pytest.raises(MalformedReply):
        message_of(b"\xff", b"", b"", None)


def test_raw_subscriptions_on_a_real_server_keep_order_beside_ordinary_ones(
    bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    transport = raw_subscriber(bus.transport)
    assert isinstance(transport, RawSubscriber)
    raw: list[tuple[bytes, bytes, bytes, bytes | None]] = []
    plain: list[Message] = []
    done = threading.Event()

    def on_raw(subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        raw.append((subject, reply, data, headers))
        if data == b"last":
            done.set()

    async def go() -> None:
        sub = await transport.subscribe_raw("raw.>", on_raw)
        other = await bus.transport.subscribe("plain.>", plain.append)
        for i in range(500):
            await bus.transport.publish(f"raw.{i}", str(i).encode(), reply="r")
        await bus.transport.publish("raw.h", b"h", headers={"KV-Operation": "DEL"})
        await bus.transport.publish("plain.x", b"p")
        await bus.transport.publish("raw.end", b"last")
        await bus.transport.flush(timeout=5)
        for _ in range(200):
            if done.is_set() and plain:
                break
            await asyncio.sleep(0.02)
        await sub.unsubscribe()
        await bus.transport.publish("raw.after", b"after")
        await bus.transport.flush(timeout=5)
        await asyncio.sleep(0.2)
        await other.unsubscribe()

    event_loop_thread.run(go(), timeout=30)
    assert [d for _s, _r, d, _h in raw[:500]] == [str(i).encode() for i in range(500)]
    assert raw[0][:2] == (b"raw.0", b"r")
    subject, _reply, _data, headers = raw[500]
    assert subject == b"raw.h"
    assert headers is not None
    assert parse_headers(headers) == {"KV-Operation": "DEL"}
    assert raw[-1][2] == b"last"  # nothing after the unsubscribe
    assert [m.data for m in plain] == [b"p"]


def test_raw_reaches_through_a_wrapper_that_leaves_subscribing_alone(bus: Bus) -> None:
    class Fence(ForwardingTransport):
        pass

    class Changes(ForwardingTransport):
        async def subscribe(self, subject: str, handler: object) -> object:  # type: ignore[override]
            raise AssertionError("not called")

    inner: object = bus.transport
    assert raw_subscriber(Fence(bus.transport)) is inner
    assert raw_subscriber(Changes(bus.transport)) is None
