"""Simulated devices for operator tests: they write the contract entries directly.

A simulated device publishes its info (labels), heartbeats, and per-deployment reports
through a real :class:`~fleet.runtime.nats.bus.Bus`, exactly as an agent would, and reads
its desired-state entries to report the revision it applies.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable, Iterable
from typing import Any

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeploymentState,
    DeviceId,
    DeviceInfo,
    HeartbeatPayload,
    Inventory,
    Phase,
    desired_state_key,
    device_heartbeat_key,
    device_info_key,
    device_state_key,
    encode_heartbeat,
    encode_info,
    encode_state,
)
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv import KvEntry

SCORE = {"type": "podman", "containers": [{"name": "web", "image": "localhost/busybox:test"}]}
SCORE_V2 = {"type": "podman", "containers": [{"name": "web", "image": "localhost/busybox:v2"}]}
INVENTORY = Inventory(
    hostname="sim", arch="x86_64", os="Debian", kernel="6.1", cpus=2,
    memory_bytes=1 << 30, runtime_name="podman", runtime_version="4.3.1",
)  # fmt: skip


def now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


class Fleet:
    """Simulated devices on one bus; every call blocks until NATS has the write."""

    def __init__(self, bus: Bus, loop: EventLoopThread) -> None:
        self.bus = bus
        self.loop = loop

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return self.loop.run(coro, timeout=timeout)

    def info(self, devices: Iterable[str], labels: dict[str, str], *, age: float = 0.0) -> None:
        at = now() - datetime.timedelta(seconds=age)

        async def go() -> None:
            await asyncio.gather(*(
                self.bus.put(BUCKET_DEVICE_INFO, device_info_key(DeviceId(d)), encode_info(
                    DeviceInfo(device_id=DeviceId(d), labels=labels, inventory=INVENTORY,
                               agent_version="0.1.0", updated_at=at)))
                for d in devices
            ))  # fmt: skip

        self.run(go())

    def beat(
        self, devices: Iterable[str], *, age: float = 0.0, instance: str | None = None
    ) -> None:
        at = now() - datetime.timedelta(seconds=age)

        def beat(d: str) -> bytes:
            return encode_heartbeat(
                HeartbeatPayload(device_id=DeviceId(d), at=at, seq=1, instance_id=instance)
            )

        async def go() -> None:
            await asyncio.gather(*(
                self.bus.put(BUCKET_DEVICE_HEARTBEAT, device_heartbeat_key(DeviceId(d)), beat(d))
                for d in devices
            ))  # fmt: skip

        self.run(go())

    def join(self, devices: Iterable[str], labels: dict[str, str]) -> None:
        devices = list(devices)
        self.info(devices, labels)
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
        desired = self.desired() if revision is None else {}

        async def go() -> None:
            puts = []
            for d in devices:
                key = desired_state_key(DeviceId(d), DeploymentName(deployment))
                rev = revision if revision is not None else desired[key].revision
                state = DeploymentState(
                    device_id=DeviceId(d), deployment=DeploymentName(deployment), phase=phase,
                    desired_revision=rev, message=message,
                    updated_at=now() - datetime.timedelta(seconds=age),
                )  # fmt: skip
                puts.append(self.bus.put(
                    BUCKET_DEVICE_STATE, device_state_key(DeviceId(d), DeploymentName(deployment)),
                    encode_state(state)))  # fmt: skip
            await asyncio.gather(*puts)

        self.run(go())

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
