"""How a simulated device's writes reach the bus: bounded, retried, timed, latest per key.

Why it exists: thousands of simulated devices share one process and one loop, where each
real device has its own. :class:`TimedPuts` keeps a process's writes in flight under one
shared ``limit`` (past what one loop serves, more in flight only means timeouts, retries
and a collapse), retries a put ``attempts`` times, and times each one (from the put to
the server's acknowledgement) as a :class:`Measurement`, because the load swarm measures.
:class:`LatestReports` writes a device's reports as the agent's publisher
(:class:`~fleet.runtime.nats.publisher.LatestValuePublisher`) does: one at a time, latest
value per key, so a report superseded before it was written never is.

What it must never do: write an older report over a newer one for the same key, hold more
than ``limit`` puts in flight, or block the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import NamedTuple

from fleet.contracts import Phase
from fleet.errors import FleetError
from fleet.runtime.aiokit.tasks import cancel_and_wait
from fleet.runtime.nats.bus import Bus


class Measurement(NamedTuple):
    """One timed operation, in locust's terms (request type, name, milliseconds, error)."""

    kind: str
    name: str
    ms: float
    error: str | None = None


MeasureFn = Callable[[Measurement], None]


class TimedPuts:
    """One device's puts on ``bus``: bounded by ``limit``, retried, timed."""

    __slots__ = ("_attempts", "_bus", "_limit", "_measure")

    def __init__(
        self, *, bus: Bus, limit: asyncio.Semaphore, attempts: int, on_measure: MeasureFn | None
    ) -> None:
        self._bus = bus
        self._limit = limit
        self._attempts = attempts
        self._measure = on_measure

    def emit(self, kind: str, name: str, start: float, *, error: str | None = None) -> None:
        """Record ``name`` as taking from ``start`` (loop time) until now."""
        if self._measure is not None:
            ms = (asyncio.get_running_loop().time() - start) * 1000.0
            self._measure(Measurement(kind, name, ms, error))

    async def once(self, name: str, bucket: str, key: str, value: bytes) -> None:
        """One attempt; its error is measured and raised (a heartbeat is not retried)."""
        async with self._limit:
            start = asyncio.get_running_loop().time()
            try:
                await self._bus.put(bucket, key, value)
            except FleetError as exc:
                self.emit("KV put", name, start, error=f"{key}: {exc}")
                raise
        self.emit("KV put", name, start)

    async def retried(self, name: str, bucket: str, key: str, value: bytes) -> bool:
        """Put with retries; the measurement is the last attempt's round trip."""
        loop = asyncio.get_running_loop()
        error: FleetError | None = None
        start = loop.time()
        for attempt in range(self._attempts):
            async with self._limit:
                start = loop.time()
                try:
                    await self._bus.put(bucket, key, value)
                except FleetError as exc:
                    error = exc
                else:
                    self.emit("KV put", name, start)
                    return True
            await asyncio.sleep(0.2 * (attempt + 1))
        self.emit("KV put", name, start, error=f"{bucket}/{key}: {error}")
        return False


class Report(NamedTuple):
    """A device-state value to write, and what it says (for the device's own books)."""

    deployment: str
    phase: Phase
    revision: int
    value: bytes
    seen: float | None  # on a rollout's last report: when the device saw the entry


class LatestReports:
    """A device's reports, written one at a time, latest value per key."""

    __slots__ = ("_bucket", "_name", "_puts", "_unwritten", "_writer", "_written", "stopped")

    def __init__(
        self, *, puts: TimedPuts, bucket: str, name: str, written: Callable[[Report], None]
    ) -> None:
        self._puts = puts
        self._bucket = bucket
        self._name = name
        self._written = written
        self._unwritten: dict[str, Report] = {}  # key -> latest unwritten report
        self._writer: asyncio.Task[None] | None = None
        self.stopped = False

    async def write(self, key: str, report: Report) -> None:
        """Write ``report`` now and wait for it (no coalescing)."""
        if await self._puts.retried("device-state", self._bucket, key, report.value):
            self._written(report)

    def offer(self, key: str, report: Report) -> None:
        """Queue ``report``: it replaces one of the same key not written yet."""
        self._unwritten[key] = report
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(
                self._write_unwritten(), name=self._name
            )

    async def _write_unwritten(self) -> None:
        while self._unwritten and not self.stopped:
            key, report = next(iter(self._unwritten.items()))
            await self.write(key, report)
            if self._unwritten.get(key) is report:
                del self._unwritten[key]
        self._unwritten.clear()

    def silence(self) -> None:
        """Write nothing more once the write in flight (if any) is done."""
        self.stopped = True

    async def stop(self) -> None:
        """Write nothing more; the write in flight is cancelled, the rest dropped."""
        self.stopped = True
        if self._writer is not None:
            await cancel_and_wait(self._writer)
