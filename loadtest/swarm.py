"""The simulated devices of one locust process: their loop, connections and statistics.

Why it exists: every locust process (a standalone run, each ``--processes`` child, each
distributed worker) needs exactly one bridge loop, one connection pool and one stream of
measurements into locust's statistics, shared by all its users. :func:`swarm_of` makes it
on first use *inside* the process (after locust forked it), never at import.

Measurements cross to gevent in batches: devices append to a list on the loop, and a
flusher hands the batch to the hub every ``FLUSH_S`` (one wake-up per batch instead of
one per report: at 100,000 devices that is the difference between a few and ~20,000
cross-thread callbacks per second).

What it must never do: fire locust events from the loop thread, or start its thread
in a process that will fork afterwards (the locust master of ``--processes`` never
builds one: it has no users).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.runtime.aiokit.tasks import cancel_and_wait
from loadtest import logbridge
from loadtest.bridge import AsyncioBridge
from loadtest.connections import ConnectionPool
from loadtest.device import DeviceBehaviour, Measurement, SimulatedDevice
from loadtest.identities import DeviceIssuer

logger = logging.getLogger(__name__)

FLUSH_S = 0.25
MAX_STARTING = 50
MAX_IN_FLIGHT = 256  # device writes awaiting the server's ack, per process
# Every this many devices started, what exists is moved out of the garbage collector's
# sight (gc.freeze). A process holding 50,000 devices has tens of millions of objects,
# and a full collection over them holds the GIL (the loop and the gevent hub stop). Its
# loop lag peaked at 21 s before and 10 s after, but other changes came with it: not
# isolated. The devices live until the run ends: there is nothing of theirs to collect.
GC_FREEZE_EVERY = 1000


@dataclass(frozen=True, kw_only=True)
class SwarmSettings:
    """What every device of a swarm shares (from locust's command line)."""

    nats_urls: tuple[str, ...]
    prefix: str
    labels: Mapping[str, str]
    devices_per_connection: int
    behaviour: DeviceBehaviour
    client: str = "lite"
    seed: int = 0
    auth_file: str = ""  # device identity on: the run's authority seeds (loadtest/identities.py)
    tls_ca: str = ""


class Swarm:
    """One process's simulated devices."""

    def __init__(self, *, settings: SwarmSettings, environment: Any, process_index: int) -> None:
        self.settings = settings
        self._env = environment
        self._index = process_index
        self._counter = itertools.count()
        self.bridge = AsyncioBridge(name=f"swarm-{process_index}")
        self._pool: ConnectionPool | None = None
        self._batch: list[Measurement] = []
        self._flusher: asyncio.Task[None] | None = None
        self._starting: asyncio.Semaphore
        self._in_flight: asyncio.Semaphore
        self.devices = 0

    def start(self) -> None:
        logbridge.install()
        self.bridge.start()
        self.bridge.call(self._start_on_loop, timeout=10)

    async def _start_on_loop(self) -> None:
        self._starting = asyncio.Semaphore(MAX_STARTING)
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._pool = ConnectionPool(
            urls=self.settings.nats_urls,
            devices_per_connection=self.settings.devices_per_connection,
            name=f"{self.settings.prefix}-p{self._index}",
            client=self.settings.client,
            issuer=DeviceIssuer(Path(self.settings.auth_file)) if self.settings.auth_file else None,
            tls_ca=Path(self.settings.tls_ca) if self.settings.tls_ca else None,
        )
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    def next_device_id(self) -> tuple[int, str]:
        n = next(self._counter)
        return n, f"{self.settings.prefix}-{self._index}-{n}"

    async def start_device(self, n: int, device_id: str) -> SimulatedDevice:
        """On the loop: connect (or share), announce, follow desired state.

        At most ``MAX_STARTING`` devices start at once: a swarm spawned faster than the
        server answers would otherwise queue thousands of requests behind each other and
        time out all of them.
        """
        assert self._pool is not None
        bus = await self._pool.bus_for(n, device_id)
        device = SimulatedDevice(
            bus=bus,
            device_id=device_id,
            labels=self.settings.labels,
            behaviour=self.settings.behaviour,
            seed=self.settings.seed,
            on_measure=self._record,
            limit=self._in_flight,
        )
        async with self._starting:
            await device.start()
        self.devices += 1
        if self.devices % GC_FREEZE_EVERY == 0:
            gc.freeze()
        return device

    async def stop_device(self, device: SimulatedDevice) -> None:
        await device.stop()
        self.devices -= 1

    def close(self) -> None:
        """Flush the last measurements, close connections, stop the loop thread."""
        if not self.bridge.running:
            return
        with contextlib.suppress(Exception):
            self.bridge.call(self._close_on_loop, timeout=30)
        self.bridge.stop()

    async def _close_on_loop(self) -> None:
        if self._flusher is not None:
            await cancel_and_wait(self._flusher)
        self._flush()
        if self._pool is not None:
            await self._pool.close()

    # -- measurements -> locust -------------------------------------------------------------

    def _record(self, measurement: Measurement) -> None:
        self._batch.append(measurement)

    async def _flush_forever(self) -> None:
        """Every ``FLUSH_S``: hand the batch to locust, and record how late the loop woke.

        ``swarm loop-lag`` is the swarm's own saturation gauge: past a few hundred ms the
        swarm, not the system under test, bounds what the run measures.
        """
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(FLUSH_S)
            lag_ms = max(0.0, (loop.time() - start - FLUSH_S) * 1000.0)
            self._batch.append(Measurement("swarm", "loop-lag", lag_ms))
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self.bridge.to_gevent(self._fire, batch)

    def _fire(self, batch: list[Measurement]) -> None:
        """On the hub: record each measurement in locust's statistics."""
        fire = self._env.events.request.fire
        for m in batch:
            fire(
                request_type=m.kind,
                name=m.name,
                response_time=m.ms,
                response_length=0,
                exception=RuntimeError(m.error) if m.error else None,
                context={},
            )
