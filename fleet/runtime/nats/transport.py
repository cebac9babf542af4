"""The one port fleet speaks NATS through: a transport, and the message it hands over.

Why it exists: everything in :mod:`fleet.runtime.nats` (KV operations, reads, watches,
batched writes, the agent's desired-state feed) is written against :class:`Transport`
and nothing else, so the same code runs over nats-py (:mod:`fleet.runtime.nats.natspy`,
the agents and the operator), over the load swarm's lean client (``loadtest/litebus.py``)
and over a small fake in unit tests. It is the minimum those layers need:

* messaging: ``publish`` (a reply subject and headers are how JetStream is spoken to),
  ``subscribe`` (deliveries of consumers, acks of batched writes, live KV messages),
  ``request`` (JetStream API calls, direct gets, acknowledged puts), ``flush`` (the
  desired feed's subscription must be on the server before it reads), ``new_inbox``;
* the connection's state, because watches and feeds must know when to wait and when to
  start over: ``connected``, ``wait_connected``, ``add_reconnect_listener``.

Connecting, closing, credentials and reconnect policy belong to an implementation, not
to the port: the layers above never open or close the connection they are given.

The contract every implementation keeps:

* a handler runs on the loop, one message at a time and in the order the server sent
  them; it must not block (it hands over, or ``tell``\\s an actor), and what it raises
  is logged, never propagated;
* after a reconnect the transport's subscriptions are in place again before the
  reconnect listeners are called; what was published to them meanwhile is lost;
* every method raises fleet's errors only: :class:`~fleet.errors.BusUnavailable` when
  the server is away, slow (no reply within ``timeout``) or nobody answers a request,
  :class:`~fleet.errors.BusError` when the server or the client refuses it. A reply the
  server sent is returned as it came (a status reply, such as a direct get's 404,
  included): reading it is the caller's job.

What it must never do: grow a method for one caller's convenience (put it above the
port), or hand a client's own message type to the layers above.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import msgspec

from fleet.errors import BusError


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """One message as it came from the server; the same type whatever the client.

    ``reply`` is ``""`` when there is none; ``headers`` is None when there are none, and
    an inline status (``NATS/1.0 404 No Messages``) is in ``Status``/``Description``,
    as nats-py reads it.
    """

    subject: str
    reply: str = ""
    data: bytes = b""
    headers: Mapping[str, str] | None = None


class MalformedReply(BusError, ValueError):
    """The server sent something fleet cannot read: a subject, header or body that breaks
    the protocol's form (a fleet error, and a ``ValueError`` as :class:`ContractError` is)."""


MessageHandler = Callable[[Message], None]
"""Called on the loop for each message, in order; must not block."""


class Subscription(Protocol):
    """A subscription on a :class:`Transport`."""

    async def unsubscribe(self) -> None:
        """Stop delivery at once (messages not yet handled are dropped); never raises."""
        ...


class Transport(Protocol):
    """A NATS connection as the runtime uses it (see the module docstring)."""

    @property
    def connected(self) -> bool:
        """Whether the connection is up now."""
        ...

    async def wait_connected(self, *, timeout: float | None) -> None:
        """Return once connected; ``BusUnavailable`` after ``timeout`` (None: no bound),
        or at once if the connection is gone for good."""
        ...

    def add_reconnect_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` on the loop after every reconnect; returns its remover."""
        ...

    def new_inbox(self) -> str:
        """A fresh, unique subject to receive replies or deliveries on."""
        ...

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        reply: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send one message (buffered: it leaves with the next write)."""
        ...

    async def subscribe(self, subject: str, handler: MessageHandler) -> Subscription:
        """Deliver every message on ``subject`` (wildcards allowed) to ``handler``."""
        ...

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float,
    ) -> Message:
        """Publish with a reply subject and return the first reply."""
        ...

    async def flush(self, *, timeout: float) -> None:
        """Return once everything sent before has reached the server."""
        ...


class ForwardingTransport(Transport):
    """A transport that hands every call to ``inner``: the base of a wrapper that
    changes one method (the load swarm's request limiter, a test's stale store)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    @property
    def connected(self) -> bool:
        return self.inner.connected

    async def wait_connected(self, *, timeout: float | None) -> None:
        await self.inner.wait_connected(timeout=timeout)

    def add_reconnect_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        return self.inner.add_reconnect_listener(listener)

    def new_inbox(self) -> str:
        return self.inner.new_inbox()

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        reply: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        await self.inner.publish(subject, payload, reply=reply, headers=headers)

    async def subscribe(self, subject: str, handler: MessageHandler) -> Subscription:
        return await self.inner.subscribe(subject, handler)

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float,
    ) -> Message:
        return await self.inner.request(subject, payload, headers=headers, timeout=timeout)

    async def flush(self, *, timeout: float) -> None:
        await self.inner.flush(timeout=timeout)
