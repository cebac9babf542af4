"""The simulated devices of one locust process: their loop, connections and statistics.

Why it exists: every locust process (a standalone run, each ``--processes`` child, each
distributed worker) needs exactly one bridge loop, one connection pool and one stream of
measurements into locust's statistics, shared by all its users. :func:`swarm_of` makes it
on first use *inside* the process (after locust forked it), never at import.

Measurements cross to gevent in batches: devices append to a list on the loop, and a
flusher hands the batch to the hub every ``FLUSH_S`` (one wake-up per batch instead of
one per report: at 100,000 devices that is the difference between a few and ~20,000
cross-thread callbacks per second).

With a control subject (:mod:`loadtest.control`), the swarm also powers its devices off
and on again when the run says so: an offline device is stopped, and started again
later under the same id (a new agent run); the locust user keeps its place meanwhile.

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

import msgspec

from fleet.errors import FleetError
from fleet.runtime.aiokit.tasks import cancel_and_wait
from fleet.runtime.nats.transport import Message
from loadtest import control, logbridge
from loadtest.bridge import AsyncioBridge
from loadtest.connections import ConnectionPool
from loadtest.device import DeviceBehaviour, Measurement, SimulatedDevice
from loadtest.identities import DeviceIssuer
from loadtest.litebus import LiteBus
from loadtest.runtime_mix import PODMAN_ONLY, Mix, runtimes_for

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
    control_subject: str = ""  # "": the run never powers devices off (loadtest/control.py)
    runtime_mix: Mix = PODMAN_ONLY  # which runtimes each device lists (loadtest/runtime_mix.py)


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
        self._live: dict[str, SimulatedDevice] = {}  # device id -> its running instance
        self._numbers: dict[str, int] = {}  # device id -> its number in this process
        self._control: LiteBus | None = None
        self._commands: asyncio.Queue[control.Command] = asyncio.Queue()
        self._obeying: asyncio.Task[None] | None = None

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
        if self.settings.control_subject:
            await self._listen(self.settings.control_subject)

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
            runtimes=runtimes_for(device_id, self.settings.runtime_mix),
        )
        async with self._starting:
            await device.start()
        self._live[device_id] = device
        self._numbers[device_id] = n
        self.devices += 1
        if self.devices % GC_FREEZE_EVERY == 0:
            gc.freeze()
        return device

    async def stop_device(self, device: SimulatedDevice) -> None:
        """Stop the device's running instance (none while it is offline)."""
        current = self._live.pop(device.device_id, None)
        if current is None:
            return
        await current.stop()
        self.devices -= 1

    # -- powered off and on by the run (loadtest/control.py) ------------------------------

    async def _listen(self, subject: str) -> None:
        bus = LiteBus(urls=self.settings.nats_urls, name=f"{self.settings.prefix}-control")
        await bus.start()
        await bus.wait_connected(timeout=30)
        await bus.transport.subscribe(subject, self._on_command)
        await bus.transport.flush(timeout=10)
        self._control = bus
        self._obeying = asyncio.get_running_loop().create_task(
            self._obey_forever(), name=f"control-{self._index}"
        )

    def _on_command(self, message: Message) -> None:
        try:
            self._commands.put_nowait(control.decode(message.data))
        except msgspec.MsgspecError as exc:
            logger.warning("control: not a command (%s): %r", exc, message.data[:200])

    async def _obey_forever(self) -> None:
        """One command at a time, in the order sent; a device that fails to boot is logged."""
        while True:
            command = await self._commands.get()
            ids = [d for d in command.devices if d in self._numbers]
            if command.action == "offline":
                devices = [self._live.pop(d) for d in ids if d in self._live]
                await asyncio.gather(*(d.stop() for d in devices))
                self.devices -= len(devices)
                count = len(devices)
            else:
                back = [d for d in ids if d not in self._live]
                outcomes = await asyncio.gather(
                    *(self.start_device(self._numbers[d], d) for d in back),
                    return_exceptions=True,
                )
                count = 0
                for device_id, outcome in zip(back, outcomes, strict=True):
                    if isinstance(outcome, FleetError | TimeoutError):
                        logger.error("control: %s did not come back: %s", device_id, outcome)
                    elif isinstance(outcome, BaseException):
                        raise outcome
                    else:
                        count += 1
            logger.info("control: %s, %d devices of this process", command.action, count)

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
        if self._obeying is not None:
            await cancel_and_wait(self._obeying)
        if self._control is not None:
            await self._control.close()
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
