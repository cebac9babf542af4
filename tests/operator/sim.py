"""Simulated devices for operator tests, written by the thousand with one call.

A simulated device publishes its info (labels), heartbeats, and per-deployment reports
through a real :class:`~fleet.runtime.nats.bus.Bus`; every value is built by the agent's
own :class:`~fleet.actors.agent.reporting.DeviceEntries` (the contracts' builders), as
the shared simulated device (:mod:`fleet.devtools.simdevice`) builds them, and its info
carries the simulated inventory. A report names the revision of the desired entry
currently in the bucket, as an agent applying it would.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable, Iterable
from typing import Any

from fleet.actors.agent.reporting import DeviceEntries
from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeviceId,
    Phase,
    desired_state_key,
)
from fleet.devtools.simprofile import SIMULATED_INVENTORY
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv import KvEntry

SCORE = {"type": "podman", "containers": [{"name": "web", "image": "localhost/busybox:test"}]}
SCORE_V2 = {"type": "podman", "containers": [{"name": "web", "image": "localhost/busybox:v2"}]}
INVENTORY = SIMULATED_INVENTORY
AGENT_VERSION = "0.1.0"


def now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


class Fleet:
    """Simulated devices on one bus; every call blocks until NATS has the write.

    Each (device, instance) is one run of an agent: its heartbeats count up from 0.
    """

    def __init__(self, bus: Bus, loop: EventLoopThread) -> None:
        self.bus = bus
        self.loop = loop
        self._runs: dict[tuple[str, str | None], DeviceEntries] = {}

    def entries(self, device: str, instance: str | None = None) -> DeviceEntries:
        """What ``device`` (its agent run ``instance``) writes, built as the agent builds it."""
        run = self._runs.get((device, instance))
        if run is None:
            run = DeviceEntries(device_id=DeviceId(device), instance_id=instance)
            self._runs[(device, instance)] = run
        return run

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return self.loop.run(coro, timeout=timeout)

    def put_all(self, bucket: str, entries: Iterable[tuple[str, bytes] | None]) -> None:
        """Write every ``(key, value)`` at once; return when all are acknowledged."""

        async def go() -> None:
            await asyncio.gather(*(self.bus.put(bucket, *e) for e in entries if e is not None))

        self.run(go())

    def info(
        self,
        devices: Iterable[str],
        labels: dict[str, str],
        *,
        age: float = 0.0,
        runtimes: Iterable[str] | None = None,
    ) -> None:
        """``runtimes``: the score types the info lists (None: left out, podman only)."""
        at = now() - datetime.timedelta(seconds=age)
        listed = None if runtimes is None else list(runtimes)
        self.put_all(BUCKET_DEVICE_INFO, [
            self.entries(d).info(labels=labels, inventory=INVENTORY,
                                 agent_version=AGENT_VERSION, at=at, runtimes=listed)
            for d in devices
        ])  # fmt: skip

    def beat(
        self, devices: Iterable[str], *, age: float = 0.0, instance: str | None = None
    ) -> None:
        at = now() - datetime.timedelta(seconds=age)
        self.put_all(
            BUCKET_DEVICE_HEARTBEAT, [self.entries(d, instance).heartbeat(at=at) for d in devices]
        )

    def join(
        self,
        devices: Iterable[str],
        labels: dict[str, str],
        *,
        runtimes: Iterable[str] | None = None,
    ) -> None:
        devices = list(devices)
        self.info(devices, labels, runtimes=runtimes)
        self.beat(devices)

    def desired(self) -> dict[str, KvEntry]:
        result: dict[str, KvEntry] = self.run(self.bus.snapshot(BUCKET_DESIRED_STATE))
        return result

    def report(
        self,
        devices: Iterable[str],
        deployment: str,
        phase: Phase,
        *,
        revision: int | None = None,
        message: str | None = None,
        age: float = 0.0,
    ) -> None:
        """Report ``phase`` for the entry currently in the bucket (or ``revision``)."""
        devices = list(devices)
        name = DeploymentName(deployment)
        desired = self.desired() if revision is None else {}
        at = now() - datetime.timedelta(seconds=age)
        self.put_all(BUCKET_DEVICE_STATE, [
            self.entries(d).report(
                deployment=name, phase=phase, message=message, at=at,
                desired_revision=revision if revision is not None
                else desired[desired_state_key(DeviceId(d), name)].revision,
            )
            for d in devices
        ])  # fmt: skip

    def put_raw(self, bucket: str, key: str, value: bytes) -> None:
        self.run(self.bus.put(bucket, key, value))


def eventually(check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns a truthy value (returned) or raises no AssertionError."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result is None or result:
                return result
        except (AssertionError, LookupError) as exc:  # not there yet
            last = exc
        time.sleep(interval)
    if last is not None:
        raise last
    raise AssertionError(f"condition not met within {timeout}s: {check}")
