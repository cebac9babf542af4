"""Every write to desired-state, as it happened: the stream's history, not its last values.

The bucket keeps one value per key; what a rollout must prove (no device outside the
batches reached ever got the new score; no entry written twice) is about every write.
A core subscription on ``$KV.desired-state.>`` sees each put and delete as it is
published, in order.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus


class DesiredTap:
    def __init__(self, bus: Bus, loop: EventLoopThread) -> None:
        self._bus, self._loop = bus, loop
        self._lock = threading.Lock()
        self.writes: list[tuple[str, str, bytes | None]] = []  # (device, deployment, value)
        self._sub: Any = None

    def start(self) -> DesiredTap:
        async def go() -> Any:
            sub = await self._bus.nc.subscribe("$KV.desired-state.>", cb=self._seen)
            await self._bus.nc.flush()
            return sub

        self._sub = self._loop.run(go(), timeout=10)
        return self

    async def _seen(self, msg: Any) -> None:
        device, _, deployment = msg.subject.removeprefix("$KV.desired-state.").partition(".")
        op = (msg.headers or {}).get("KV-Operation")
        with self._lock:
            self.writes.append((device, deployment, None if op else bytes(msg.data)))

    def stop(self) -> None:
        if self._sub is not None:
            self._loop.run(self._sub.unsubscribe(), timeout=10)

    def devices_given(self, deployment: str, value: bytes) -> set[str]:
        """Every device that was ever written ``value`` for ``deployment``."""
        with self._lock:
            return {d for d, name, v in self.writes if name == deployment and v == value}

    def puts_per_device(self, deployment: str, value: bytes) -> Counter[str]:
        with self._lock:
            return Counter(d for d, name, v in self.writes if name == deployment and v == value)
