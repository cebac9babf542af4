"""Notices a second agent beating under this device's id.

Why it exists: ten agents started with one ``device_id`` (a cloned disk, a copied
config) raced each other over the same containers and reports for minutes, and
nothing noticed. Every heartbeat names its agent run (``instance_id``, random at
start); this module listens to the device's own heartbeat key and, when a beat with
another instance id shows up, logs an ERROR naming the device id and both instance ids
(at most once per ``interval``, 60 s by default). It changes nothing else: which agent
is the right one is a person's call.

It is one core NATS subscription on the key's subject
(``$KV.device-heartbeat.heartbeat.<device>``): no consumer, nothing on the server but
the interest (see docs/agent.md on why the agent keeps no consumer). The transport renews the
subscription after a reconnect; beats sent while disconnected are simply not seen.

What it must never do: raise on any bytes (a value is decoded with the bounded, total
decoder; anything else is ignored), block the loop, or write to the bus.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from fleet.contracts import (
    BUCKET_DEVICE_HEARTBEAT,
    DeviceId,
    decode_heartbeat,
    device_heartbeat_key,
)
from fleet.errors import ContractError, FleetError
from fleet.runtime.aiokit.tasks import cancel_and_wait, create_guarded_task
from fleet.runtime.nats import subjects
from fleet.runtime.nats.transport import Message, Subscription, Transport

logger = logging.getLogger(__name__)


def heartbeat_subject(device_id: DeviceId) -> str:
    """The subject a put of the device's heartbeat key is published on."""
    return subjects.kv_subject(BUCKET_DEVICE_HEARTBEAT, device_heartbeat_key(device_id))


class DuplicateWatch:
    """Logs an ERROR when a heartbeat of ``device_id`` comes from another agent run."""

    def __init__(
        self,
        *,
        device_id: DeviceId,
        instance_id: str,
        transport: Transport,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._device = device_id
        self._instance = instance_id
        self._interval = interval
        self._clock = clock
        self._last_logged: float | None = None
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self.others: set[str] = set()  # other instance ids seen (bounded below)

    def start(self) -> None:
        """Start on the running loop (call from a coroutine on the loop)."""
        self._task = create_guarded_task(
            self._subscribe(), name=f"duplicate-watch-{self._device}", finishable=True
        )

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _subscribe(self) -> None:
        delay = 0.5
        while self._sub is None:
            await self._transport.wait_connected(timeout=None)
            try:
                self._sub = await self._transport.subscribe(
                    heartbeat_subject(self._device), self._on_message
                )
            except FleetError as exc:  # connection lost meanwhile: retry once it is back
                logger.info("duplicate watch of %s: subscribe failed (%r)", self._device, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _on_message(self, msg: Message) -> None:
        try:
            beat = decode_heartbeat(msg.data)
        except ContractError:
            return  # a delete marker, or someone else's garbage: not a beat
        other = beat.instance_id
        if beat.device_id != self._device or other is None or other == self._instance:
            return
        if len(self.others) < 100:
            self.others.add(other)
        now = self._clock()
        if self._last_logged is not None and now - self._last_logged < self._interval:
            return
        self._last_logged = now
        logger.error(
            "device id %s is used by another agent too: heartbeats come from instance %s and "
            "from this one, instance %s; give each device its own device_id (both agents "
            "drive the same containers and reports)",
            self._device,
            other,
            self._instance,
        )
