"""The agent's ear for requests made of its device: ``fleet.device.<id>.logs|describe``.

Why it exists: ``fleetctl logs`` and ``fleetctl describe device`` are answered by the
agent itself, over NATS request/reply, so the device opens no port and its credentials
decide who may ask (docs/security.md). This module holds the two core subscriptions
(no consumer, nothing kept on the server but the interest; the transport makes them
again after a reconnect) and the way back: :meth:`DeviceRequests.answer`, callable from
any thread, publishes an answer on the loop.

A request is handed over only if its reply subject is an inbox of an ask of this device
(:func:`~fleet.runtime.nats.subjects.is_answer_inbox`): a requester naming a bucket's
subject, or another identity's inbox, would otherwise make the device write there (its
credentials refuse those too: it may publish answers under ``<asker's inbox
prefix>.ask.<its id>.`` only). Anything else is dropped and counted.

What it must never do: decode or judge a request (the responder does), block the loop
(``on_request`` must hand over at once), or publish anywhere but to an inbox it was asked
from.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable

import msgspec

from fleet.contracts import DeviceId
from fleet.contracts.ondemand import REQUEST_KINDS, RequestKind
from fleet.errors import FleetError
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.aiokit.tasks import cancel_and_wait, create_guarded_task
from fleet.runtime.nats import subjects
from fleet.runtime.nats.transport import Message, MessageHandler, Subscription, Transport

logger = logging.getLogger(__name__)


class DeviceRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One request made of this device: its kind, where to answer, who asked (the
    reply inbox's prefix), and its bytes, not yet decoded."""

    kind: RequestKind
    reply: str
    requester: str
    data: bytes


RequestHandler = Callable[[DeviceRequest], None]
"""What the listener hands requests to (on the loop: it must not block)."""


class DeviceRequests:
    """Subscribes to the device's request subjects; answers on the loop."""

    def __init__(
        self,
        *,
        device_id: DeviceId,
        transport: Transport,
        loop: EventLoopThread,
        on_request: RequestHandler,
    ) -> None:
        self._device = device_id
        self._transport = transport
        self._loop = loop
        self._on_request = on_request
        self._subs: list[Subscription] = []
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0  # requests without an inbox to answer
        self._sending: set[asyncio.Task[None]] = set()  # refusals being published

    def start(self) -> None:
        """Start on the running loop (call from a coroutine on the loop)."""
        self._task = create_guarded_task(
            self._subscribe(), name=f"device-requests-{self._device}", finishable=True
        )

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs.clear()

    @property
    def listening(self) -> bool:
        return len(self._subs) == len(REQUEST_KINDS)

    async def _subscribe(self) -> None:
        delay = 0.5
        while not self.listening:
            await self._transport.wait_connected(timeout=None)
            try:
                for kind in REQUEST_KINDS[len(self._subs) :]:
                    subject = subjects.device_request(self._device, kind)
                    self._subs.append(await self._transport.subscribe(subject, self._handler(kind)))
                await self._transport.flush(timeout=10)
            except FleetError as exc:  # connection lost meanwhile: retry once it is back
                logger.info("requests of %s: subscribe failed (%r)", self._device, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        logger.info("answering %s", ", ".join(subjects.device_request(self._device, k)
                                              for k in REQUEST_KINDS))  # fmt: skip

    def _handler(self, kind: RequestKind) -> MessageHandler:
        def handle(msg: Message) -> None:
            if not subjects.is_answer_inbox(msg.reply, self._device):
                self.dropped += 1
                logger.debug("request on %s without an inbox to answer: dropped", msg.subject)
                return
            self._on_request(
                DeviceRequest(
                    kind=kind,
                    reply=msg.reply,
                    requester=subjects.inbox_owner(msg.reply),
                    data=msg.data,
                )
            )

        return handle

    def answer(self, reply: str, data: bytes) -> concurrent.futures.Future[None] | None:
        """Publish ``data`` to ``reply`` (an inbox) from any thread; returns at once.
        A failure is logged (the requester sees a timeout)."""
        if not subjects.is_answer_inbox(reply, self._device):
            return None
        if self._loop.in_loop_thread():  # a refusal, from the request handler itself
            task = self._loop.loop.create_task(self._transport.publish(reply, data))
            self._sending.add(task)  # referenced until done: the loop keeps only weak refs
            task.add_done_callback(self._sending.discard)
            task.add_done_callback(_log_task_failure)
            return None
        future = self._loop.submit(self._transport.publish(reply, data))
        future.add_done_callback(_log_failure)
        return future


def _log_task_failure(task: asyncio.Task[None]) -> None:
    exc = None if task.cancelled() else task.exception()
    if exc is not None:
        logger.info("an answer to a device request was not sent: %s", exc)


def _log_failure(future: concurrent.futures.Future[None]) -> None:
    exc = None if future.cancelled() else future.exception()
    if exc is not None:
        logger.info("an answer to a device request was not sent: %s", exc)
