"""Messages as the server sent them, for the subscriptions that carry the most.

Why it exists: a message delivered through nats-py becomes a ``Msg`` (subject and reply
decoded, headers parsed), waits in its subscription's queue, and is handed over by that
subscription's task through a coroutine; then fleet makes it a
:class:`~fleet.runtime.nats.transport.Message`. At 100,000 devices beating every 10 s
that was most of the operator's CPU per heartbeat before any of fleet's own work. A
transport that can (:class:`RawSubscriber`) hands a *raw* subscription's messages to its
handler as they come out of the protocol parser: subject, reply subject, payload and the
header block, as bytes, on the loop, in order, one at a time. The handler decides what
it needs to read (the push consumer reads a plain delivery's reply subject and nothing
else; anything with headers goes through :func:`message_of`).

:func:`parse_headers` reads a header block (``NATS/1.0 [status [description]]`` then
``Key: Value`` lines) as nats-py does: the inline status in ``Status``/``Description``.

What it must never do: raise anything but :class:`MalformedReply` on any bytes, or read
more than the block it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from fleet.runtime.nats.subjects import DESCRIPTION, STATUS
from fleet.runtime.nats.transport import (
    ForwardingTransport,
    MalformedReply,
    Message,
    Subscription,
    Transport,
)

RawHandler = Callable[[bytes, bytes, bytes, bytes | None], None]
"""``(subject, reply, payload, headers)``: ``reply`` ``b""`` when none, ``headers`` None
when none; called on the loop, in order; must not block (what it raises is logged)."""

_HEAD = b"NATS/1.0"
MAX_HEADER_BYTES = 64 * 1024


@runtime_checkable
class RawSubscriber(Protocol):
    """A transport that can hand a subscription's messages over raw (nats-py's can)."""

    async def subscribe_raw(self, subject: str, handler: RawHandler) -> Subscription: ...


def raw_subscriber(transport: Transport) -> RawSubscriber | None:
    """``transport``'s raw side, if it has one: through wrappers that subscribe as their
    inner transport does (a write fence), not through one that changes subscribing."""
    while not isinstance(transport, RawSubscriber):
        if not isinstance(transport, ForwardingTransport):
            return None
        if type(transport).subscribe is not ForwardingTransport.subscribe:
            return None
        transport = transport.inner
    return transport


def parse_headers(raw: bytes) -> dict[str, str]:
    """A header block as a dict; an inline status in ``Status`` (and ``Description``)."""
    if len(raw) > MAX_HEADER_BYTES:
        raise MalformedReply(f"a header block of {len(raw)} bytes (at most {MAX_HEADER_BYTES})")
    if not raw.startswith(_HEAD):
        raise MalformedReply(f"a header block that does not start with NATS/1.0: {raw[:40]!r}")
    # As nats-py reads them: bytes that are not UTF-8 replaced, a line without a name
    # skipped. Any writer of a key chooses its headers: refusing the block would refuse
    # the entry, and a consumer cannot go past an entry it refuses (it resumes before it).
    text = raw.decode(errors="replace")
    first, *lines = text.split("\r\n")
    out: dict[str, str] = {}
    status = first[len("NATS/1.0") :].strip()
    if status:
        code, _, description = status.partition(" ")
        if code.isdigit():
            out[STATUS] = code
        if description.strip():
            out[DESCRIPTION] = description.strip()
    for line in lines:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if colon and name.strip():
            out[name.strip()] = value.strip()
    return out


def message_of(subject: bytes, reply: bytes, payload: bytes, headers: bytes | None) -> Message:
    """The :class:`Message` nats-py would have made of these parts."""
    try:
        return Message(
            subject=subject.decode(),
            reply=reply.decode(),
            data=payload,
            headers=None if not headers else parse_headers(headers),
        )
    except UnicodeDecodeError as exc:
        raise MalformedReply(f"a subject that is not UTF-8: {exc}") from None
