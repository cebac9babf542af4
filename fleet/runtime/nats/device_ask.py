"""Asking one device, as ``fleetctl`` does: its description, its container logs.

Why it exists: the requester's half of :mod:`fleet.contracts.ondemand`. An answer may
be several messages (a log in chunks, a followed log for as long as it is renewed), so
a request is not nats-py's one-reply ``request``: each ask subscribes to an inbox of its
own, sends the request with a reply subject under it, and reads what comes back,
decoded bounded, until the chunk that says ``done``. A followed log is renewed every
``renew_every`` seconds (each renewal with a fresh reply subject) and the device
acknowledges each renewal, so a device that went away is noticed within ``timeout``.
Every reply subject names the device (:func:`~fleet.runtime.nats.subjects.ask_inbox`):
the device's credentials let it answer there and nowhere else.

A device that is not there is :class:`NoAnswer`: at once when nobody listens on its
subject (nats-server answers "no responders"), after ``timeout`` when it does not
answer. Both say which, so the caller can tell a person what it means.

What it must never do: wait without a bound, or believe an answer it has not decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from typing import Final, Literal

import msgspec

from fleet.contracts import DeviceId
from fleet.contracts.ondemand import (
    DESCRIBE,
    FOLLOW_WINDOW_S,
    LOGS,
    DescribeRequest,
    DeviceDescription,
    LogsChunk,
    LogsRequest,
    decode_description,
    decode_logs_chunk,
    encode_request,
)
from fleet.errors import BusUnavailable, ContractError
from fleet.runtime.nats import subjects
from fleet.runtime.nats.transport import MalformedReply, Message, Transport

RENEW_EVERY_S = FOLLOW_WINDOW_S / 3


class NoAnswer(BusUnavailable):
    """The device did not answer: nobody listens on its subject, or it stayed silent."""

    def __init__(self, message: str, *, why: Literal["no-responders", "timeout"]) -> None:
        super().__init__(message)
        self.why = why


class _Ask:
    """One request's inbox: what comes back, in order."""

    def __init__(self, transport: Transport, device: DeviceId, subject: str) -> None:
        self.transport = transport
        self.device = device
        self.subject = subject
        self.inbox = subjects.ask_inbox(transport.new_inbox(), device)
        self.queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=1000)
        self.sent = 0
        self._sub: object = None

    async def __aenter__(self) -> _Ask:
        def keep(msg: Message) -> None:
            with contextlib.suppress(asyncio.QueueFull):  # bounded: the device is bounded too
                self.queue.put_nowait(msg)

        self._sub = await self.transport.subscribe(f"{self.inbox}.{subjects.ANY_TOKEN}", keep)
        return self

    async def __aexit__(self, *exc: object) -> None:
        unsubscribe = getattr(self._sub, "unsubscribe", None)
        if unsubscribe is not None:
            await unsubscribe()

    async def send(self, payload: bytes) -> None:
        self.sent += 1
        await self.transport.publish(self.subject, payload, reply=f"{self.inbox}.{self.sent}")

    async def next(self, *, timeout: float) -> Message:
        try:
            msg = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            raise NoAnswer(
                f"device {self.device} did not answer within {timeout:g}s", why="timeout"
            ) from None
        headers = msg.headers or {}
        if headers.get(subjects.STATUS) == subjects.STATUS_NO_RESPONDERS:
            raise NoAnswer(
                f"device {self.device} is not listening (no responders on {self.subject})",
                why="no-responders",
            )
        return msg


AGAIN: Final = ("rate-limited", "busy")
"""Error codes that mean "ask again": a renewal refused so is tried again, not the end."""


async def describe(transport: Transport, device: DeviceId, *, timeout: float) -> DeviceDescription:
    """The device's description; :class:`NoAnswer`, or ``MalformedReply`` for an answer
    that breaks the contract."""
    async with _Ask(transport, device, subjects.device_request(device, DESCRIBE)) as ask:
        await ask.send(encode_request(DescribeRequest()))
        msg = await ask.next(timeout=timeout)
        try:
            return decode_description(msg.data)
        except ContractError as exc:
            raise MalformedReply(f"device {device} answered: {exc}") from exc


async def logs(
    transport: Transport,
    device: DeviceId,
    request: LogsRequest,
    *,
    timeout: float,
    renew_every: float = RENEW_EVERY_S,
) -> AsyncGenerator[LogsChunk, None]:
    """The chunks of the answer to ``request``, until one says ``done``; a followed log
    is renewed every ``renew_every`` s for as long as the caller keeps reading."""
    async with _Ask(transport, device, subjects.device_request(device, LOGS)) as ask:
        await ask.send(encode_request(request))
        session: str | None = None
        renewed_at = time.monotonic()
        waiting_since: float | None = renewed_at  # a renewal (or the request) unanswered
        while True:
            now = time.monotonic()
            if session is not None and now - renewed_at >= renew_every:
                renewal = msgspec.structs.replace(request, session=session, tail=0)
                await ask.send(encode_request(renewal))
                renewed_at = now
                waiting_since = waiting_since or now
            wait = renew_every - (now - renewed_at) if session is not None else timeout
            if waiting_since is not None:
                wait = min(wait, max(0.0, waiting_since + timeout - now))
            try:
                msg = await ask.next(timeout=max(wait, 0.01))
            except NoAnswer as exc:
                if exc.why != "timeout":
                    raise
                overdue = waiting_since is not None and time.monotonic() - waiting_since >= timeout
                if session is None or overdue:  # an answer stopped midway, or no ack came
                    raise NoAnswer(
                        f"device {device} did not answer within {timeout:g}s", why="timeout"
                    ) from None
                continue  # only time to renew
            try:
                chunk = decode_logs_chunk(msg.data)
            except ContractError as exc:
                raise MalformedReply(f"device {device} answered: {exc}") from exc
            if session is not None and chunk.error is not None and chunk.error.code in AGAIN:
                # A renewal turned away for now (other asks use the requester's rate): the
                # session lives on the device until its window ends, the next renewal is
                # due in renew_every, and ``timeout`` still bounds a run of refusals.
                continue
            waiting_since = None
            session = chunk.session or session
            yield chunk
            if chunk.done:
                return
