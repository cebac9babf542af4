"""How a simulated device follows its desired state: the agent's own feed, nothing else.

Why it exists: the load swarm must receive desired-state entries by the *same* mechanism
``fleet-agent`` uses (one core subscription on ``$KV.desired-state.<device>.*``, an
initial read, direct gets: :class:`fleet.runtime.nats.desired_feed.DesiredFeed`), so that a
swarm run measures what a real fleet would cost the server. This module is the one
place the swarm touches that API; if it changes, this is the one edit.

One difference, on purpose: thousands of simulated devices share one process and one
loop, where each real device has its own. When a Deployment is applied, every device's
feed resolves its new entry (a direct get) at the same moment; unbounded, 30,000 such
requests on one loop were measured to time out (5 s), each timeout then triggering a
resync, each resync an initial read with a consumer, past the stream's consumer cap: a
collapse no real fleet would see. So the feed's requests go through ``limit`` (shared by
the process's devices): the same requests, at most ``limit`` in flight. The limit is a
transport of its own (:class:`LimitedTransport`) around the device's bus's one.

What it must never do: substitute a cheaper mechanism (a bucket-wide watch, a shared
wildcard subscription) for the agent's: the figures would stop meaning anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Protocol

from fleet.contracts import DeviceId
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.desired_feed import DesiredFeed
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.transport import ForwardingTransport, Message, Transport


class Following(Protocol):
    """A running feed: it delivers entries until stopped."""

    async def stop(self) -> None: ...


class LimitedTransport(ForwardingTransport):
    """``transport``, except that a request first waits for one of ``limit``'s slots."""

    def __init__(self, transport: Transport, limit: asyncio.Semaphore) -> None:
        super().__init__(transport)
        self._limit = limit

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float,
    ) -> Message:
        async with self._limit:
            return await self.inner.request(subject, payload, headers=headers, timeout=timeout)


def follow_desired(
    *,
    bus: Bus,
    device_id: DeviceId,
    on_entry: Callable[[KvEntry], None],
    on_synced: Callable[[], None] | None = None,
    resync_interval: float = 300.0,
    limit: asyncio.Semaphore | None = None,
) -> Following:
    """Start following ``device_id``'s desired entries (call on the bus's loop)."""
    kv = bus.kv if limit is None else bus.kv.using(LimitedTransport(bus.transport, limit))
    feed = DesiredFeed(
        kv=kv,
        device_id=device_id,
        on_entry=on_entry,
        on_synced=on_synced,
        resync_interval=resync_interval,
    )
    feed.start()
    return feed
