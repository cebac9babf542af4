"""The :class:`~fleet.runtime.nats.transport.Transport` on nats-py: fleet's only nats-py connection.

Why it exists: agents and the operator talk to NATS through nats-py, and only here (and
in :mod:`fleet.runtime.nats.errors`, which translates its errors). This module owns
what is the client's business and not the port's: connecting in the background and
retrying with backoff when the server is away at start (an agent boots without
network), nats-py's own reconnect (``max_reconnect_attempts=-1``), the reconnect
listeners, and the connect options: user credentials (a ``.creds`` file, re-read at
every connect), TLS with a given CA, and the inbox prefix the credentials allow
(docs/security.md). A connection the server closes for good (credentials revoked or
expired) stays closed and says so in the log, until :meth:`NatsPyTransport.reconnect`
makes it anew (renewed credentials, docs/agent.md "Enrollment"). Messages are handed over as
:class:`~fleet.runtime.nats.transport.Message`.

What it must never do: let a nats-py object or error out (``client`` and ``jetstream``
exist for tests and tools, not for the runtime), be called from a thread other than its
loop's, or block in a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import nats.errors
from nats.aio.client import DEFAULT_PENDING_SIZE, Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js import JetStreamContext
from nats.nuid import NUID

from fleet.errors import BusRefused, BusUnavailable, FleetError
from fleet.runtime.aiokit.tasks import cancel_and_wait, create_guarded_task
from fleet.runtime.nats.errors import UNAVAILABLE, translate
from fleet.runtime.nats.raw import RawHandler
from fleet.runtime.nats.transport import Message, MessageHandler, Subscription, Transport

logger = logging.getLogger(__name__)

#: nats-py's types, for the compatibility accessors of :class:`~fleet.runtime.nats.bus.Bus`.
NatsPyClient = Client
NatsPyJetStream = JetStreamContext


class _Subscription(Subscription):
    def __init__(
        self,
        sub: NatsSubscription,
        subject: str,
        deliver: Callable[[Msg], Awaitable[None]],
        live: set[_Subscription],
    ) -> None:
        self._sub = sub
        self._subject = subject
        self._deliver = deliver
        self._live = live  # its transport's: made again on a connection made anew
        live.add(self)

    async def renew_on(self, nc: Client) -> None:
        """Subscribe again on ``nc``, a connection made anew (see ``NatsPyTransport.reconnect``)."""
        self._sub = await nc.subscribe(self._subject, cb=self._deliver)

    async def unsubscribe(self) -> None:
        self._live.discard(self)
        try:
            await self._sub.unsubscribe()
        except Exception as exc:  # connection closed, or unsubscribed already: nothing left
            logger.debug("unsubscribe from %s: %r", self._subject, exc)


class _RawSubscription(_Subscription):
    """A subscription whose messages skip nats-py's ``Msg``, queue and task (:mod:`.raw`)."""

    def __init__(
        self, sub: NatsSubscription, subject: str, handler: RawHandler, live: set[_Subscription]
    ) -> None:
        super().__init__(sub, subject, _never, live)
        self._handler = handler

    async def renew_on(self, nc: Client) -> None:
        self._sub = await _raw_subscribe(nc, self._subject, self._handler)

    async def unsubscribe(self) -> None:
        _raw_handlers(self._sub._conn).pop(self._sub._id, None)
        await super().unsubscribe()


async def _never(_msg: Msg) -> None:  # a raw subscription's nats-py callback: never called
    return


def _raw_handlers(nc: Client) -> dict[int, RawHandler]:
    """``nc``'s raw handlers by subscription id; the first call puts the dispatch in place.

    Hazard: this replaces nats-py's ``Client._process_msg`` on this one client (what its
    protocol parser awaits for every MSG/HMSG; nats-py 2.x): a raw subscription's message
    goes to its handler there, any other to nats-py's own. tests/runtime/nats pins it."""
    found: dict[int, RawHandler] | None = getattr(nc, "_fleet_raw_handlers", None)
    if found is not None:
        return found
    handlers: dict[int, RawHandler] = {}
    setattr(nc, "_fleet_raw_handlers", handlers)  # noqa: B010 - kept with its client
    process = nc._process_msg

    async def dispatch(
        sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        handler = handlers.get(sid)
        if handler is None:
            await process(sid, subject, reply, data, headers or b"")  # None: none, as b""
            return
        try:
            handler(subject, reply, data, headers)
        except Exception:
            logger.exception("raw handler of subscription %d failed", sid)

    setattr(nc, "_process_msg", dispatch)  # noqa: B010 - a method replaced on one instance
    return handlers


async def _raw_subscribe(nc: Client, subject: str, handler: RawHandler) -> NatsSubscription:
    handlers = _raw_handlers(nc)
    sub = await nc.subscribe(subject, cb=_never)
    handlers[sub._id] = handler
    return sub


# What nats-server answers a client it will not let in (an -ERR on connect).
_REFUSALS = ("authorization violation", "authentication expired", "authentication timeout")


class NatsPyTransport(Transport):
    """One nats-py connection: :meth:`start` it, use it as a ``Transport``, :meth:`close` it."""

    def __init__(
        self,
        *,
        urls: Sequence[str],
        name: str,
        on_connection: Callable[[bool], None] | None = None,
        connect_timeout: float = 2.0,
        reconnect_wait: float = 0.5,
        ping_interval: int = 5,
        max_outstanding_pings: int = 2,
        credentials: Path | None = None,
        tls_ca: Path | None = None,
        inbox_prefix: str = "_INBOX",
        buffer_while_away: bool = True,
    ) -> None:
        """``credentials``: a user's ``.creds`` file; ``tls_ca``: the CA (PEM) the server's
        certificate must chain to (TLS is then required); ``inbox_prefix``: where replies
        and deliveries arrive, the one the credentials allow to subscribe;
        ``buffer_while_away`` False: a publish while disconnected fails at once
        (``pending_size=0``) instead of waiting in nats-py's buffer to be sent on
        reconnect, perhaps after the write fence closed (a fenced writer's connection)."""
        if not urls:
            raise ValueError("a NATS connection needs at least one url")
        self._credentials_path = None if credentials is None else str(credentials)
        self._tls = None if tls_ca is None else ssl.create_default_context(cafile=str(tls_ca))
        self._refusal: str | None = None  # why the server last refused to let it in
        self._inbox_prefix = inbox_prefix
        self._pending_size = DEFAULT_PENDING_SIZE if buffer_while_away else 0
        self._urls = list(urls)
        self._name = name
        self._on_connection = on_connection
        self._connect_timeout = connect_timeout
        self._reconnect_wait = reconnect_wait
        self._ping_interval = ping_interval
        self._max_outstanding_pings = max_outstanding_pings
        self._nc: Client | None = None
        self._nuid = NUID()
        self._connected = asyncio.Event()
        self._closing = False
        self._connector: asyncio.Task[None] | None = None
        self._reconnect_listeners: list[Callable[[], None]] = []
        self._subscriptions: set[_Subscription] = set()

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background (retrying forever); return at once."""
        if self._connector is None:
            self._connector = create_guarded_task(
                self._connect_forever(), name=f"bus-connect-{self._name}", finishable=True
            )

    async def close(self) -> None:
        self._closing = True
        if self._connector is not None and not self._connector.done():
            await cancel_and_wait(self._connector)
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._connected.clear()

    async def _connect_forever(self) -> None:
        delay = 0.1
        while not self._closing:
            nc = Client()
            try:
                await nc.connect(
                    servers=self._urls,
                    name=self._name,
                    connect_timeout=self._connect_timeout,  # type: ignore[arg-type]  # typed int, used as a float
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=self._reconnect_wait,  # type: ignore[arg-type]  # as above
                    ping_interval=self._ping_interval,
                    max_outstanding_pings=self._max_outstanding_pings,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    closed_cb=self._closed,
                    error_cb=self._error,
                    inbox_prefix=self._inbox_prefix,
                    user_credentials=self._credentials_path,
                    tls=self._tls,
                    pending_size=self._pending_size,
                )
            except (nats.errors.NoServersError, *UNAVAILABLE) as exc:
                logger.info(
                    "NATS at %s not reachable (%s); retrying in %.1fs", self._urls, exc, delay
                )
                with contextlib.suppress(Exception):
                    await nc.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            except nats.errors.Error as exc:  # refused: credentials, TLS; they may be fixed
                logger.warning(
                    "NATS at %s refused %s (%s); retrying in %.1fs", self._urls, self._name, exc,
                    delay,
                )  # fmt: skip
                with contextlib.suppress(Exception):
                    await nc.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._nc = nc
            logger.info("connected to NATS at %s as %s", _url(nc.connected_url), self._name)
            if self._subscriptions:  # a connection made anew (reconnect): as nats-py's own
                for sub in list(self._subscriptions):
                    try:
                        await sub.renew_on(nc)
                    except Exception:  # the connection dropped again: nats-py reconnects
                        logger.exception("subscribing again on the new connection failed")
                await self._reconnected()
                return
            self._set_connected(True)
            return

    async def reconnect(self) -> None:
        """Connect again now, presenting the credentials file as it is now (a renewed JWT).

        nats-py reads the file at every connect, but a live connection keeps the JWT it
        connected with, and one the server closed for good (an expired JWT) is never made
        again by nats-py. So a live connection is re-made by nats-py (its subscriptions
        replayed), one closed for good is made anew with every live subscription made
        again on it; either way the reconnect listeners run. A connection still trying
        reads the file at its next attempt anyway.
        """
        nc = self._nc
        if self._closing:
            return
        if nc is not None and nc.is_connected:
            await nc.force_reconnect()
            return
        if nc is None or not nc.is_closed:
            return  # still connecting, or reconnecting: the next attempt reads the file
        logger.info("making the NATS connection of %s anew", self._name)
        self._nc = None
        self._connector = create_guarded_task(
            self._connect_forever(), name=f"bus-connect-{self._name}", finishable=True
        )

    def _set_connected(self, up: bool) -> None:
        if up:
            self._refusal = None
            self._connected.set()
        else:
            self._connected.clear()
        if self._on_connection is not None:
            try:
                self._on_connection(up)
            except Exception:
                logger.exception("on_connection callback failed")

    async def _disconnected(self) -> None:
        if not self._closing:
            logger.warning("disconnected from NATS")
        self._set_connected(False)

    async def _reconnected(self) -> None:
        logger.info("reconnected to NATS at %s", _url(self.client.connected_url))
        self._set_connected(True)
        for listener in list(self._reconnect_listeners):
            try:
                listener()
            except Exception:
                logger.exception("reconnect listener failed")

    async def _closed(self) -> None:
        nc = self._nc
        if self._closing or nc is None:  # closed by us, or a connect attempt that failed
            return
        reason = nc.last_error
        logger.error(
            "NATS closed the connection of %s for good (%r): credentials revoked or "
            "expired? It stays closed until renewed credentials make it anew.", self._name,
            reason,
        )  # fmt: skip
        self._set_connected(False)

    async def _error(self, exc: Exception) -> None:
        text = str(exc)
        if "permissions violation" in text.lower():  # what the credentials do not allow
            logger.warning("NATS refused %s: %s", self._name, exc)
            return
        if any(word in text.lower() for word in _REFUSALS):  # who it is: not let in
            if self._refusal != text:
                logger.warning("NATS at %s refused to let %s in: %s (its credentials wrong, "
                               "expired or revoked?)", self._urls, self._name, text)  # fmt: skip
            self._refusal = text
            return
        logger.debug("NATS client error: %r", exc)

    # -- connection state (the port) --------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, *, timeout: float | None) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError as exc:
            if self._refusal:
                raise BusRefused(
                    f"NATS at {self._urls} refused to let {self._name} in: {self._refusal}"
                ) from exc
            raise BusUnavailable(f"NATS at {self._urls} not reachable within {timeout}s") from exc

    def add_reconnect_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        self._reconnect_listeners.append(listener)
        return lambda: self._reconnect_listeners.remove(listener)

    # -- messaging (the port) ---------------------------------------------------------

    @property
    def client(self) -> Client:
        """The nats-py client: for tests and tools only (the runtime uses the port)."""
        if self._nc is None:
            raise BusUnavailable(f"NATS at {self._urls} is not connected yet")
        return self._nc

    def jetstream(self, *, timeout: float) -> JetStreamContext:
        """nats-py's JetStream API: for tests and tools only (the runtime uses the port)."""
        return self.client.jetstream(timeout=timeout)

    def new_inbox(self) -> str:
        return f"{self._inbox_prefix}.{self._nuid.next().decode()}"

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        reply: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        nc = self._nc
        if nc is None:
            raise BusUnavailable(f"NATS at {self._urls} is not connected yet")
        try:
            await nc.publish(subject, payload, reply, None if headers is None else _dict(headers))
        except Exception as exc:
            raise translate(exc, what=f"publish to {subject}") from exc

    async def subscribe(self, subject: str, handler: MessageHandler) -> Subscription:
        async def deliver(msg: Msg) -> None:
            try:
                handler(
                    Message(
                        subject=msg.subject, reply=msg.reply, data=msg.data, headers=msg.headers
                    )
                )
            except Exception:
                logger.exception("handler of subscription %s failed", subject)

        try:
            sub = await self.client.subscribe(subject, cb=deliver)
        except FleetError:
            raise
        except Exception as exc:
            raise translate(exc, what=f"subscribe to {subject}") from exc
        return _Subscription(sub, subject, deliver, self._subscriptions)

    async def subscribe_raw(self, subject: str, handler: RawHandler) -> Subscription:
        """As :meth:`subscribe`, the message's parts handed over as bytes (:mod:`.raw`)."""
        try:
            sub = await _raw_subscribe(self.client, subject, handler)
        except FleetError:
            raise
        except Exception as exc:
            raise translate(exc, what=f"subscribe to {subject}") from exc
        return _RawSubscription(sub, subject, handler, self._subscriptions)

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float,
    ) -> Message:
        try:
            msg = await self.client.request(
                subject, payload, timeout=timeout, headers=_dict(headers)
            )
        except FleetError:
            raise
        except nats.errors.NoRespondersError as exc:
            raise BusUnavailable(f"no responders on {subject} (missing stream?)") from exc
        except Exception as exc:
            raise translate(exc, what=f"request to {subject}") from exc
        return Message(subject=msg.subject, reply=msg.reply, data=msg.data, headers=msg.headers)

    async def flush(self, *, timeout: float) -> None:
        try:
            await self.client.flush(timeout=timeout)  # type: ignore[arg-type]  # typed int, used as wait_for's
        except FleetError:
            raise
        except Exception as exc:
            raise translate(exc, what="flush") from exc

    @property
    def connected_url(self) -> str:
        return _url(self.client.connected_url) if self._nc is not None else "(not connected)"


def _url(parsed: object) -> str:
    """nats-py's ``connected_url`` is a ``ParseResult`` (or None): as a plain URL."""
    geturl = getattr(parsed, "geturl", None)
    return str(geturl()) if callable(geturl) else str(parsed)


def _dict(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    if headers is None or isinstance(headers, dict):
        return headers
    return dict(headers)
