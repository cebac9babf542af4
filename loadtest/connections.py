"""NATS connections for simulated devices: one per device, or one shared by many.

Why it exists: a real device has its own connection, and the swarm does the same while
the machine allows it. Here ``ulimit -n`` is 20,000 per process and one nats-server
stopped accepting at ~19,990 connections, so past that the swarm *multiplexes*: device
``n`` of a process uses connection ``n // devices_per_connection``. On the wire nothing
else changes (each device keeps its own subscription, keys and payloads), but the
server sees fewer connections than devices, and a connection's outage hits all of its
devices at once. docs/loadtest.md says when to use which.

What it must never do: be used from a thread other than its loop's, or hand out a
connection before it is connected and its buckets are open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from fleet.runtime.nats.bus import Bus
from loadtest.identities import DeviceIssuer
from loadtest.litebus import LiteBus

#: The devices' NATS clients: ``lite`` (:mod:`loadtest.litebus`, the default) speaks the
#: same wire at a fraction of nats-py's CPU; ``nats-py`` is the agent's own client.
CLIENTS = ("lite", "nats-py")

#: Seconds a device's request may wait for its reply. A real agent's 5 s guards against
#: a lost reply; in a swarm, tens of thousands of devices share one loop and their
#: replies queue behind each other when a Deployment reaches them all at once. At
#: 100,000 devices 5 s was exceeded by hundreds of direct gets, and each timeout
#: triggered a resync (an initial read with a consumer): more load, not less.
REQUEST_TIMEOUT = 30.0


class ConnectionPool:
    """Hands out :class:`Bus` connections, ``devices_per_connection`` devices each."""

    def __init__(
        self,
        *,
        urls: Sequence[str],
        devices_per_connection: int,
        name: str,
        connect_timeout: float = 30.0,
        client: str = "lite",
        issuer: DeviceIssuer | None = None,
        tls_ca: Path | None = None,
    ) -> None:
        """With ``issuer`` (device identity on) every device has its own connection,
        credential and inboxes, over TLS trusting ``tls_ca``: the lean client only."""
        if client not in CLIENTS:
            raise ValueError(f"client must be one of {CLIENTS}, got {client!r}")
        if issuer is not None and (client != "lite" or devices_per_connection != 1):
            raise ValueError("device identity needs the lite client, one device a connection")
        if devices_per_connection < 1:
            raise ValueError(f"devices_per_connection must be >= 1, got {devices_per_connection}")
        self._urls = list(urls)
        self._per = devices_per_connection
        self._name = name
        self._timeout = connect_timeout
        self._client = client
        self._issuer = issuer
        self._tls_ca = tls_ca
        self._buses: dict[int, asyncio.Task[Bus]] = {}

    @property
    def connections(self) -> int:
        return len(self._buses)

    async def bus_for(self, index: int, device_id: str) -> Bus:
        """The connection for the ``index``-th device of this process (made on first use)."""
        group = index // self._per
        task = self._buses.get(group)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._connect(group, device_id), name=f"connect-{self._name}-{group}"
            )
            self._buses[group] = task
        return await asyncio.shield(task)

    async def _connect(self, group: int, device_id: str) -> Bus:
        bus: Bus
        if self._issuer is not None:
            credentials, inbox_prefix = self._issuer.issue(device_id)
            bus = LiteBus(
                urls=self._urls, name=device_id, request_timeout=REQUEST_TIMEOUT,
                credentials=credentials, tls_ca=self._tls_ca, inbox_prefix=inbox_prefix,
            )  # fmt: skip
        elif self._client == "lite":
            bus = LiteBus(
                urls=self._urls, name=f"{self._name}-{group}", request_timeout=REQUEST_TIMEOUT
            )
        else:
            bus = Bus(
                urls=self._urls, name=f"{self._name}-{group}", request_timeout=REQUEST_TIMEOUT
            )
        await bus.start()
        try:
            await bus.wait_connected(timeout=self._timeout)
            if self._issuer is None:  # a device may not look at streams (docs/security.md)
                await bus.ensure_buckets()
        except BaseException:
            await bus.close()
            del self._buses[group]
            raise
        return bus

    async def close(self) -> None:
        tasks = list(self._buses.values())
        self._buses.clear()
        for task in tasks:
            if not task.done():
                task.cancel()
        for task in tasks:
            try:
                bus = await task
            except (asyncio.CancelledError, Exception):  # never came up: nothing to close
                continue
            await bus.close()
