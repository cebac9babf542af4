"""The lean client against a real nats-server: pub/sub, requests, headers, sizes, failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import nats.errors
import pytest

from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.server import free_port
from loadtest.natsmsg import Msg
from loadtest.natsparse import Parser
from loadtest.natsproto import ConnectionClosed, NatsClient, NoResponders, RequestTimeout
from tests.budgets import CLOSED_FAILS_WAITERS_S, NO_RESPONDERS_S, budget
from tests.fixtures.nats import NatsServer


async def connected(url: str, name: str = "lite-extra") -> NatsClient:
    client = NatsClient(url=url, name=name)
    await client.connect()
    return client


async def wait_until(check: Callable[[], bool], *, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + budget(timeout)
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def echo_responder(nc: NatsClient, subject: str, calls: list[bytes]) -> Any:
    def answer(msg: Msg) -> None:
        calls.append(msg.data)
        nc.publish(msg.reply, b"re:" + msg.data)

    sub = await nc.subscribe(subject, cb=answer)
    await nc.flush(timeout=5)
    return sub


def test_publish_reaches_a_subscriber_in_order(
    lite: NatsClient, event_loop_thread: EventLoopThread
) -> None:
    async def scenario() -> list[tuple[str, bytes, str]]:
        got: list[tuple[str, bytes, str]] = []

        async def on_msg(msg: Msg) -> None:  # a coroutine callback, as fleet's code uses
            got.append((msg.subject, msg.data, msg.reply))

        sub = await lite.subscribe("greet.*", cb=on_msg)
        await lite.flush(timeout=5)
        lite.publish("greet.a", b"one")
        lite.publish("greet.b", b"two", reply="back.here")
        lite.publish("other", b"not for greet")
        await wait_until(lambda: len(got) == 2)
        await sub.unsubscribe()
        lite.publish("greet.c", b"after unsubscribe")
        await lite.flush(timeout=5)
        await asyncio.sleep(0.05)
        return got

    assert event_loop_thread.run(scenario(), timeout=10) == [
        ("greet.a", b"one", ""),
        ("greet.b", b"two", "back.here"),
    ]


def test_request_answered_on_the_same_and_on_another_connection(
    lite: NatsClient, nats_server: NatsServer, event_loop_thread: EventLoopThread
) -> None:
    async def scenario() -> tuple[bytes, bytes]:
        calls: list[bytes] = []
        await echo_responder(lite, "svc.same", calls)
        other = await connected(nats_server.url)
        try:
            await echo_responder(other, "svc.other", calls)
            same = await lite.request("svc.same", b"a", timeout=5)
            far = await lite.request("svc.other", b"b", timeout=5)
        finally:
            await other.close()
        return same.data, far.data

    assert event_loop_thread.run(scenario(), timeout=15) == (b"re:a", b"re:b")


def test_many_concurrent_requests_each_answered_once_to_its_caller(
    lite: NatsClient, nats_server: NatsServer, event_loop_thread: EventLoopThread
) -> None:
    count = 3000

    async def scenario() -> tuple[list[bytes], list[bytes], int]:
        calls: list[bytes] = []
        responder = await connected(nats_server.url, "responder")
        try:
            await echo_responder(responder, "svc.echo", calls)
            replies = await asyncio.gather(
                *(lite.request("svc.echo", b"%d" % i, timeout=10) for i in range(count))
            )
            await lite.flush(timeout=5)
        finally:
            await responder.close()
        return [r.data for r in replies], calls, lite.pending_requests

    replies, calls, pending = event_loop_thread.run(scenario(), timeout=60)
    assert replies == [b"re:%d" % i for i in range(count)]
    assert sorted(calls) == sorted(b"%d" % i for i in range(count))
    assert pending == 0


def test_a_request_nobody_listens_to_fails_at_once_naming_the_subject(
    lite: NatsClient, event_loop_thread: EventLoopThread
) -> None:
    async def scenario() -> float:
        start = time.monotonic()
        with pytest.raises(NoResponders, match=r"nobody\.home"):
            await lite.request("nobody.home", b"?", timeout=10)
        return time.monotonic() - start

    assert event_loop_thread.run(scenario(), timeout=15) < NO_RESPONDERS_S
    assert lite.pending_requests == 0


def test_a_request_without_answer_times_out_and_its_token_is_forgotten(
    lite: NatsClient, event_loop_thread: EventLoopThread
) -> None:
    async def scenario() -> None:
        silent: list[Msg] = []
        await lite.subscribe("svc.silent", cb=silent.append)
        await lite.flush(timeout=5)
        with pytest.raises(RequestTimeout, match=r"svc\.silent: no reply in 0\.2s"):
            await lite.request("svc.silent", b"x", timeout=0.2)
        assert lite.pending_requests == 0
        assert len(silent) == 1
        lite.publish(silent[0].reply, b"too late")  # a late reply is dropped quietly
        await lite.flush(timeout=5)
        assert not lite.is_closed

    event_loop_thread.run(scenario(), timeout=10)


def test_headers_from_nats_py_and_status_lines_from_the_server(
    lite: NatsClient, bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    async def scenario() -> tuple[Msg, Msg, Msg]:
        got: list[Msg] = []
        await lite.subscribe("with.headers", cb=got.append)
        await lite.flush(timeout=5)
        await bus.nc.publish("with.headers", b"body", headers={"Nats-Sequence": "9", "X-A": "b c"})
        await bus.nc.flush()
        await wait_until(lambda: bool(got))
        missing = await lite.request(
            "$JS.API.DIRECT.GET.KV_desired-state.$KV.desired-state.no.such", b"", timeout=5
        )
        # and the other way: lean headers read by nats-py
        sub = await bus.nc.subscribe("to.nats-py")
        await bus.nc.flush()
        # Core NATS delivers at most once: beside two busy loops nats-py's pings went
        # unanswered once, it reconnected, and the one message sent meanwhile was lost
        # (15 s passed without it). Sent again each second until one arrives, bounded.
        deadline = time.monotonic() + budget(30)
        while True:
            lite.publish("to.nats-py", b"x", headers={"KV-Operation": "DEL"})
            try:
                back = await sub.next_msg(timeout=1)
                break
            except nats.errors.TimeoutError:
                assert time.monotonic() < deadline, "nats-py never got the lean client's HPUB"
        await sub.unsubscribe()
        return got[0], missing, back  # type: ignore[return-value]  # nats-py's Msg, same fields

    msg, missing, back = event_loop_thread.run(scenario(), timeout=budget(45))
    assert msg.data == b"body"
    assert msg.headers == {"Nats-Sequence": "9", "X-A": "b c"}
    assert missing.headers is not None
    assert missing.headers["Status"] == "404"
    assert missing.headers["Description"] == "Message Not Found"
    assert back.headers == {"KV-Operation": "DEL"}


def test_a_payload_of_max_payload_size_and_one_byte_over(
    lite: NatsClient, bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    size = lite.max_payload
    payload = bytes(range(256)) * (size // 256)

    async def scenario() -> tuple[bytes, bytes]:
        got: list[bytes] = []
        await lite.subscribe("big", cb=lambda m: got.append(m.data))
        await lite.flush(timeout=5)
        lite.publish("big", payload)  # lean -> lean
        await bus.nc.publish("big", payload[::-1])  # nats-py -> lean
        await bus.nc.flush()
        await wait_until(lambda: len(got) == 2, timeout=10)
        with pytest.raises(Exception, match=r"max_payload of 1048576"):
            lite.publish("big", payload + b"!")
        return got[0], got[1]

    one, two = event_loop_thread.run(scenario(), timeout=20)
    assert size == 1024 * 1024
    assert {one, two} == {payload, payload[::-1]}  # two connections: either may come first
    assert not lite.is_closed


def test_a_burst_of_ten_thousand_small_messages_arrives_whole_and_in_order(
    lite: NatsClient, bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    count = 10_000

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        plain: list[bytes] = []
        queued: list[bytes] = []

        async def slow(msg: Msg) -> None:
            queued.append(msg.data)
            if len(queued) % 1000 == 0:
                await asyncio.sleep(0)  # a coroutine callback that yields meanwhile

        await lite.subscribe("burst", cb=lambda m: plain.append(m.data))
        await lite.subscribe("burst", cb=slow)
        await lite.flush(timeout=5)
        for i in range(count):
            await bus.nc.publish("burst", b"m%05d" % i)
        await bus.nc.flush()
        await wait_until(lambda: len(plain) == count and len(queued) == count, timeout=20)
        return plain, queued

    plain, queued = event_loop_thread.run(scenario(), timeout=40)
    expected = [b"m%05d" % i for i in range(count)]
    assert plain == expected
    assert queued == expected


def test_a_recorded_server_stream_parses_the_same_in_any_split(
    nats_server: NatsServer, bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    chunks: list[bytes] = []

    async def record() -> list[tuple[Any, ...]]:
        client = NatsClient(url=nats_server.url, name="recorder")
        original = client.data_received

        def tap(data: bytes) -> None:
            chunks.append(data)
            original(data)

        client.data_received = tap  # type: ignore[method-assign]
        await client.connect()
        seen: list[tuple[Any, ...]] = []
        await client.subscribe("rec.>", cb=lambda m: seen.append((m.subject, m.data, m.headers)))
        await client.flush(timeout=5)
        for i in range(300):
            await bus.nc.publish(
                f"rec.{i}", b"x" * (i * 37), headers={"N": str(i)} if i % 2 else None
            )
        await bus.nc.flush()
        await wait_until(lambda: len(seen) == 300)
        await client.close()
        return seen

    seen = event_loop_thread.run(record(), timeout=15)
    stream = b"".join(chunks)

    class Sink:
        def __init__(self) -> None:
            self.msgs: list[tuple[Any, ...]] = []

        def on_msg(
            self, subject: bytes, sid: int, reply: bytes, header: bytes | None, payload: bytes
        ) -> None:
            if subject.startswith(b"rec."):
                self.msgs.append((subject.decode(), payload, header))

        def on_info(self, info: dict[str, Any]) -> None: ...
        def on_ping(self) -> None: ...
        def on_pong(self) -> None: ...
        def on_err(self, message: str) -> None: ...

    for step in (1, 3, 1000, len(stream)):
        sink = Sink()
        parser = Parser(sink)
        for pos in range(0, len(stream), step):
            parser.feed(stream[pos : pos + step])
        assert [(s, p) for s, p, _ in sink.msgs] == [(s, d) for s, d, _ in seen]
        assert len(sink.msgs) == 300


def test_pings_from_the_server_are_answered(
    pinging_server: str, event_loop_thread: EventLoopThread
) -> None:
    """The server PINGs every 200 ms and drops a client after 3 unanswered: it stays."""

    async def scenario() -> tuple[int, bool]:
        client = NatsClient(url=pinging_server, name="pinged")
        pings: list[float] = []
        answer = client.on_ping

        def counted() -> None:
            pings.append(time.monotonic())
            answer()

        client.on_ping = counted  # type: ignore[method-assign]
        await client.connect()
        try:
            await wait_until(lambda: len(pings) >= 6, timeout=10)
            calls: list[bytes] = []
            await echo_responder(client, "alive", calls)
            reply = await client.request("alive", b"?", timeout=2)
            return len(pings), reply.data == b"re:?" and not client.is_closed
        finally:
            await client.close()

    pings, alive = event_loop_thread.run(scenario(), timeout=15)
    assert pings >= 6  # twice the unanswered PINGs that would have dropped it
    assert alive


def closed(client: NatsClient) -> bool:
    """Read afresh: mypy keeps ``client.is_closed`` narrowed across the calls that change it."""
    return client.is_closed


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


def test_ping_pong_and_fatal_errors_with_a_fake_transport() -> None:
    async def scenario() -> None:
        client = NatsClient(url="nats://127.0.0.1:1", name="fake")
        transport = FakeTransport()
        client._loop = asyncio.get_running_loop()  # as connect() leaves it
        client._transport = transport  # type: ignore[assignment]
        client.data_received(b"PI")
        client.data_received(b"NG\r\nPING\r\n")
        flushing = asyncio.ensure_future(client.flush(timeout=5))
        await wait_until(lambda: len(b"".join(transport.written)) >= 18)
        assert b"".join(transport.written) == b"PONG\r\nPONG\r\nPING\r\n"
        client.data_received(b"PONG\r\n")
        await flushing
        client.data_received(b"-ERR 'Permissions Violation for Publish to x'\r\n")
        assert not client.is_closed
        waiting = asyncio.ensure_future(client.request("x", b"", timeout=10))
        await asyncio.sleep(0)
        client.data_received(b"-ERR 'Stale Connection'\r\n")
        with pytest.raises(ConnectionClosed, match="Stale Connection"):
            await waiting
        assert closed(client)
        assert transport.closed

    asyncio.run(scenario())


def test_an_unknown_operation_error_closes_the_connection_and_fails_waiters(
    lite: NatsClient, event_loop_thread: EventLoopThread
) -> None:
    async def scenario() -> None:
        silent: list[Msg] = []
        await lite.subscribe("svc.silent", cb=silent.append)
        waiting = asyncio.ensure_future(lite.request("svc.silent", b"x", timeout=30))
        await wait_until(lambda: bool(silent))
        lite._send(b"GARBAGE\r\n")  # the server answers -ERR 'Unknown Protocol Operation'
        with pytest.raises(ConnectionClosed, match="Unknown Protocol Operation"):
            await waiting
        assert lite.is_closed

    event_loop_thread.run(scenario(), timeout=10)


def test_server_stopped_fails_every_pending_request_and_flush_at_once(
    lite: NatsClient, nats_server: NatsServer, event_loop_thread: EventLoopThread
) -> None:
    async def start_waiting() -> list[asyncio.Future[Any]]:
        silent: list[Msg] = []
        await lite.subscribe("svc.silent", cb=silent.append)
        await lite.flush(timeout=5)
        waiters: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(lite.request("svc.silent", b"%d" % i, timeout=60))
            for i in range(100)
        ]
        await wait_until(lambda: len(silent) == 100)
        return waiters

    async def outcome(waiters: list[asyncio.Future[Any]]) -> list[BaseException | None]:
        await asyncio.wait_for(lite.closed.wait(), 5)
        done, _ = await asyncio.wait(waiters, timeout=1)
        assert len(done) == 100
        return [w.exception() for w in waiters]

    waiters = event_loop_thread.run(start_waiting(), timeout=10)
    start = time.monotonic()
    nats_server.stop()
    errors = event_loop_thread.run(outcome(waiters), timeout=10)
    assert time.monotonic() - start < CLOSED_FAILS_WAITERS_S
    assert all(isinstance(e, ConnectionClosed) for e in errors), errors
    assert nats_server.url in str(errors[0])

    async def after() -> None:
        with pytest.raises(ConnectionClosed, match="closed"):
            await lite.request("svc.silent", b"", timeout=1)
        with pytest.raises(ConnectionClosed):
            await lite.flush(timeout=1)

    event_loop_thread.run(after(), timeout=5)


def test_a_refused_connection_names_the_url(event_loop_thread: EventLoopThread) -> None:
    url = f"nats://127.0.0.1:{free_port()}"

    async def scenario() -> None:
        client = NatsClient(url=url, name="nobody")
        with pytest.raises(ConnectionClosed, match=f"cannot connect to NATS at {url}"):
            await client.connect()
        assert client.is_closed

    event_loop_thread.run(scenario(), timeout=10)
