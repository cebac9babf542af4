"""A lean NATS client on asyncio for the load swarm's simulated devices, and nothing else.

Why it exists: measured on this 2-core machine, nats-py spends ~400 us of CPU per
request in the swarm (79 CPU-s for ~190k requests at 10,000 devices), which bounds how
fast one swarm process can make its devices react. This client does what simulated
devices need with far less per message: one ``asyncio.Protocol`` (parsing in
``data_received``, no StreamReader, no reader task), writes gathered and written once
per loop iteration, and requests muxed through ONE inbox subscription
``_INBOX.<random>.*`` with a token per request and a dict of futures (nats-py's
new-style requests). :mod:`loadtest.litebus` makes it a fleet transport
(``LeanTransport``, the port :mod:`fleet.runtime.nats` is written against) and a bus.

It speaks the core protocol only: INFO/CONNECT (``headers`` and ``no_responders`` on),
PUB/HPUB, SUB/UNSUB, MSG/HMSG, PING/PONG, -ERR; TLS (upgraded after INFO, as nats-server
expects, trusting ``tls_ca``) and a user JWT with the signed nonce
(:class:`loadtest.natsauth.LeanCredentials`) when given, and its inboxes under
``inbox_prefix`` (per-identity inboxes: docs/security.md). No cluster discovery, and NO
RECONNECT: the swarm runs on loopback next to its nats-server; when
the connection ends every pending request and flush fails at once with
:class:`ConnectionClosed`, :attr:`NatsClient.closed` is set and the client stays
closed (make a new one). A fleet-agent on a real network needs nats-py's reconnect
and must keep using it (:mod:`fleet.runtime.nats.natspy`).

What it must never do: serve anything but simulated devices, block the loop, or leave
a request waiting after the connection is gone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import json
import logging
import secrets
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from loadtest.natsauth import LeanCredentials
from loadtest.natsmsg import Msg, parse_headers
from loadtest.natsparse import Parser, ProtocolError

logger = logging.getLogger(__name__)

#: -ERR texts after which the server keeps the connection open (everything else closes it).
_NON_FATAL_ERRORS = ("permissions violation", "invalid subject", "invalid publish subject")

MsgCallback = Callable[[Msg], Awaitable[None] | None]


class NatsError(Exception):
    """Root of the lean client's errors."""


class ConnectionClosed(NatsError, ConnectionError):
    """The connection is gone (refused, lost, closed, or a fatal -ERR); it never comes back."""


class NoResponders(NatsError):
    """Nobody subscribes to the subject a request went to (the server's 503)."""


class RequestTimeout(NatsError, TimeoutError):
    """No answer (reply or PONG) within the timeout."""


class Subscription:
    """One SUB; messages go to ``cb`` in order (a coroutine callback runs one at a time)."""

    def __init__(
        self, *, client: NatsClient, sid: int, subject: str, cb: MsgCallback, limit: int
    ) -> None:
        self._client = client
        self.sid = sid
        self.subject = subject
        self._cb = cb
        self._is_coro = inspect.iscoroutinefunction(cb)
        self._limit = limit
        self._queue: collections.deque[Msg] = collections.deque()
        self._worker: asyncio.Task[None] | None = None
        self.active = True
        self.dropped = 0  # messages dropped past ``limit`` (a slow consumer)

    async def unsubscribe(self) -> None:
        """Stop delivery at once (queued messages are dropped) and UNSUB on the server."""
        self._client.unsubscribe_sid(self.sid)
        self.active = False
        self._queue.clear()

    def _deliver(self, msg: Msg) -> None:
        if not self._is_coro:
            try:
                self._cb(msg)
            except Exception:
                logger.exception("callback of subscription %s failed", self.subject)
            return
        if len(self._queue) >= self._limit:
            if self.dropped == 0:
                logger.warning(
                    "slow consumer on %s: more than %d messages queued; dropping",
                    self.subject,
                    self._limit,
                )
            self.dropped += 1
            return
        self._queue.append(msg)
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._drain(), name=f"nats-sub-{self.subject}"
            )

    async def _drain(self) -> None:
        try:
            while self._queue and self.active:
                msg = self._queue.popleft()
                try:
                    await self._cb(msg)  # type: ignore[misc]  # _is_coro: it returns an awaitable
                except Exception:
                    logger.exception("callback of subscription %s failed", self.subject)
        finally:
            self._worker = None


class _Wire(asyncio.Protocol):
    """The transport's callbacks, handed to the client (kept apart from its public API)."""

    def __init__(self, client: NatsClient) -> None:
        self._client = client

    def data_received(self, data: bytes) -> None:
        self._client.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._client.connection_lost(exc)


class NatsClient:
    """One NATS connection (see the module docstring for what it does and does not do)."""

    def __init__(
        self,
        *,
        url: str,
        name: str,
        connect_timeout: float = 5.0,
        credentials: LeanCredentials | None = None,
        tls_ca: Path | None = None,
        inbox_prefix: str = "_INBOX",
    ) -> None:
        parts = urllib.parse.urlsplit(url if "://" in url else f"nats://{url}")
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise ValueError(f"lean NATS client needs a nats:// or tls:// url, got {url!r}")
        self._credentials = credentials
        self._ssl = ssl.create_default_context(cafile=str(tls_ca)) if tls_ca is not None else None
        self.url = url
        self.name = name
        self._host = parts.hostname
        self._port = parts.port or 4222
        self._connect_timeout = connect_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.Transport | None = None
        self._parser = Parser(self)
        self._out: list[bytes] = []
        self._write_scheduled = False
        self._info: asyncio.Future[dict[str, Any]] | None = None
        self._pongs: collections.deque[asyncio.Future[None]] = collections.deque()
        self._subs: dict[int, Subscription] = {}
        self._next_sid = 1
        prefix = f"{inbox_prefix}.{secrets.token_hex(11)}"
        self._inbox_prefix = prefix
        self._resp_prefix = f"{prefix}.r."
        self._resp_prefix_b = self._resp_prefix.encode()
        self._resp_sid = 0
        self._resp: dict[bytes, asyncio.Future[Msg]] = {}
        self._next_token = 0
        self.server_info: dict[str, Any] = {}
        self.max_payload = 1024 * 1024
        self.closed = asyncio.Event()
        self._lost: asyncio.Future[None] | None = None  # set when the transport is gone
        self.last_error: BaseException | None = None

    # -- connection -------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        return self.closed.is_set()

    @property
    def is_connected(self) -> bool:
        return self._transport is not None and not self.closed.is_set()

    @property
    def pending_requests(self) -> int:
        """Requests waiting for their reply (tests: a timed-out one must not linger)."""
        return len(self._resp)

    async def connect(self) -> None:
        """Connect, CONNECT, subscribe the response inbox, PING and wait for the PONG."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._lost = loop.create_future()
        self._info = loop.create_future()
        try:
            async with asyncio.timeout(self._connect_timeout):
                wire = _Wire(self)
                transport, _ = await loop.create_connection(lambda: wire, self._host, self._port)
                self._transport = transport
                info = await self._info
                if info.get("tls_required") or self._ssl is not None:
                    self._transport = await self._start_tls(loop, transport, wire)
                options: dict[str, Any] = {
                    "verbose": False,
                    "pedantic": False,
                    "headers": True,
                    "no_responders": True,
                    "protocol": 1,
                    "name": self.name,
                    "lang": "python-lean",
                    "version": "0",
                }
                if self._credentials is not None:
                    options.update(_signed(self._credentials, info))
                self._send(b"CONNECT " + json.dumps(options).encode() + b"\r\n")
                self._resp_sid = self._subscribe_raw(self._resp_prefix + "*")
                await self._ping()
        except asyncio.CancelledError:
            self._abort(None)
            raise
        except (OSError, TimeoutError, NatsError) as exc:
            self._abort(exc)
            if not self._info.cancelled():
                self._info.exception()  # failed by _abort maybe before anyone awaited it
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
            raise ConnectionClosed(f"cannot connect to NATS at {self.url}: {reason}") from exc

    async def _start_tls(
        self, loop: asyncio.AbstractEventLoop, transport: asyncio.Transport, wire: _Wire
    ) -> asyncio.Transport:
        """Upgrade the connection after INFO, as nats-server expects."""
        if self._ssl is None:
            raise NatsError("the server requires TLS: give the lean client tls_ca")
        upgraded = await loop.start_tls(transport, wire, self._ssl, server_hostname=self._host)
        if upgraded is None:
            raise NatsError("the TLS handshake ended the connection")
        return upgraded

    async def close(self) -> None:
        """Write what is buffered, close the connection, fail everything still waiting."""
        if self.closed.is_set():
            return
        self._write_out()
        transport = self._transport
        self._abort(None)
        if transport is not None and self._lost is not None and not self._lost.done():
            # A TLS transport closes after its close_notify exchange: wait for it (bounded),
            # so the loop never stops with the connection half closed.
            try:
                await asyncio.wait_for(asyncio.shield(self._lost), 2.0)
            except TimeoutError:
                transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        if not self.closed.is_set():
            logger.warning("connection to NATS at %s lost: %r", self.url, exc)
        self._abort(exc)

    def _abort(self, exc: BaseException | None) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        if self.last_error is None and exc is not None:
            self.last_error = exc
        why = f": {self.last_error}" if self.last_error is not None else ""
        error = ConnectionClosed(f"connection to NATS at {self.url} closed{why}")
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        self._out.clear()
        waiting: list[asyncio.Future[Any]] = [*self._resp.values(), *self._pongs]
        if self._info is not None:
            waiting.append(self._info)
        self._resp.clear()
        self._pongs.clear()
        for fut in waiting:
            if not fut.done():
                fut.set_exception(error)
        for sub in self._subs.values():
            sub.active = False
        self._subs.clear()

    # -- writing ----------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if self.closed.is_set():
            raise ConnectionClosed(f"connection to NATS at {self.url} is closed")
        self._out.append(data)
        if not self._write_scheduled:
            self._write_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._write_out)

    def _write_out(self) -> None:
        self._write_scheduled = False
        if not self._out or self._transport is None:
            return
        out, self._out = self._out, []
        self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    def publish(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        reply: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Queue a PUB (HPUB with headers); written with the rest of this loop iteration's."""
        if not subject or " " in subject or "\r" in subject or "\n" in subject:
            raise ValueError(f"invalid NATS subject {subject!r}")
        if len(payload) > self.max_payload:
            raise NatsError(
                f"payload for {subject} is {len(payload)} bytes, over the server's "
                f"max_payload of {self.max_payload}"
            )
        subj = subject.encode()
        rep = b" " + reply.encode() if reply else b""
        if headers:
            hdr = b"".join(
                [b"NATS/1.0\r\n", *(f"{k}: {v}\r\n".encode() for k, v in headers.items()), b"\r\n"]
            )
            self._send(
                b"HPUB %b%b %d %d\r\n%b%b\r\n"
                % (subj, rep, len(hdr), len(hdr) + len(payload), hdr, payload)
            )
        else:
            self._send(b"PUB %b%b %d\r\n%b\r\n" % (subj, rep, len(payload), payload))

    # -- subscriptions and requests -----------------------------------------------------

    def new_inbox(self) -> str:
        return f"{self._inbox_prefix}.{secrets.token_hex(8)}"

    def _subscribe_raw(self, subject: str, queue: str = "") -> int:
        sid = self._next_sid
        self._next_sid += 1
        group = f" {queue}" if queue else ""
        self._send(f"SUB {subject}{group} {sid}\r\n".encode())
        return sid

    async def subscribe(
        self,
        subject: str,
        queue: str = "",
        *,
        cb: MsgCallback,
        pending_msgs_limit: int = 65536,
    ) -> Subscription:
        """Subscribe; ``cb`` (plain or ``async``) gets every message, in order."""
        sid = self._subscribe_raw(subject, queue)
        sub = Subscription(client=self, sid=sid, subject=subject, cb=cb, limit=pending_msgs_limit)
        self._subs[sid] = sub
        return sub

    def unsubscribe_sid(self, sid: int) -> None:
        if self._subs.pop(sid, None) is not None and not self.closed.is_set():
            self._send(b"UNSUB %d\r\n" % sid)

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        timeout: float = 0.5,
        headers: Mapping[str, str] | None = None,
    ) -> Msg:
        """Publish with a reply token on the muxed inbox; the reply, or a clear error."""
        if self.closed.is_set():
            raise ConnectionClosed(f"connection to NATS at {self.url} is closed")
        self._next_token += 1
        token = b"%x" % self._next_token
        loop = self._loop
        assert loop is not None
        fut: asyncio.Future[Msg] = loop.create_future()
        self._resp[token] = fut
        timer = loop.call_later(timeout, _expire, fut, subject, timeout)
        try:
            self.publish(
                subject, payload, reply=self._resp_prefix + token.decode(), headers=headers
            )
            msg = await fut
        finally:
            timer.cancel()
            self._resp.pop(token, None)
        if not msg.data and msg.headers and msg.headers.get("Status") == "503":
            raise NoResponders(f"no responders for {subject} on NATS at {self.url}")
        return msg

    async def flush(self, timeout: float = 10.0) -> None:
        """PING and wait for its PONG: everything sent before has reached the server."""
        try:
            async with asyncio.timeout(timeout):
                await self._ping()
        except TimeoutError as exc:
            raise RequestTimeout(f"flush to NATS at {self.url}: no PONG in {timeout}s") from exc

    def _ping(self) -> asyncio.Future[None]:
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        self._send(b"PING\r\n")
        self._pongs.append(fut)
        return fut

    # -- reading (called by the transport and the parser) -------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed(data)
        except ProtocolError as exc:
            logger.error("NATS at %s: %s; closing", self.url, exc)  # noqa: TRY400  # no traceback: the message says it
            self.last_error = exc
            self._abort(exc)

    def on_msg(
        self, subject: bytes, sid: int, reply: bytes, header: bytes | None, payload: bytes
    ) -> None:
        if sid == self._resp_sid:
            fut = self._resp.pop(subject[len(self._resp_prefix_b) :], None)
            if fut is None or fut.done():
                return  # late reply to a request that timed out or was cancelled
            fut.set_result(
                Msg(
                    subject=subject.decode(),
                    reply=reply.decode(),
                    data=payload,
                    headers=parse_headers(header) if header is not None else None,
                )
            )
            return
        sub = self._subs.get(sid)
        if sub is None:
            return  # unsubscribed meanwhile
        sub._deliver(  # the client owns its subscriptions
            Msg(
                subject=subject.decode(),
                reply=reply.decode(),
                data=payload,
                headers=parse_headers(header) if header is not None else None,
            )
        )

    def on_info(self, info: dict[str, Any]) -> None:
        self.server_info = info
        self.max_payload = int(info.get("max_payload", self.max_payload))
        if self._info is not None and not self._info.done():
            self._info.set_result(info)

    def on_ping(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            self._send(b"PONG\r\n")

    def on_pong(self) -> None:
        # One PONG answers one PING, in order; a flush that timed out left its future
        # cancelled in the queue, so its late PONG is consumed here, not taken by the next.
        if self._pongs:
            fut = self._pongs.popleft()
            if not fut.done():
                fut.set_result(None)

    def on_err(self, message: str) -> None:
        if message.lower().startswith(_NON_FATAL_ERRORS):
            logger.warning("NATS at %s: -ERR %s", self.url, message)
            return
        logger.error("NATS at %s: -ERR %s; closing", self.url, message)
        self.last_error = NatsError(f"-ERR '{message}'")
        self._abort(self.last_error)


def _signed(credentials: LeanCredentials, info: dict[str, Any]) -> dict[str, str]:
    """CONNECT's ``jwt`` and ``sig``: the user's JWT and the server's nonce, signed."""
    nonce = info.get("nonce")
    if not isinstance(nonce, str):
        raise NatsError("the server sent no nonce to sign: is auth on?")
    return {"jwt": credentials.jwt, "sig": credentials.sign(nonce)}


def _expire(fut: asyncio.Future[Msg], subject: str, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(RequestTimeout(f"request to {subject}: no reply in {timeout}s"))
