"""Every write to desired-state during a load run, in order: the stream's history.

Why it exists: the desired-state bucket keeps one value per key (history 1), and what a
rollout must prove is about every write ever made: no device outside the batches reached
was ever given the new revision, every device given it was given the stable one back.
A core subscription on ``$KV.desired-state.>`` (through the run's bus, as the operator
tests' tap does) sees each put and delete as the server publishes it, in order.

What it must never do: write, or decide anything (:mod:`loadtest.rollout_check` does).
"""

from __future__ import annotations

import threading
import time
from typing import NamedTuple, Self

from fleet.contracts import BUCKET_DESIRED_STATE
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.transport import Message, Subscription

SUBJECTS = f"$KV.{BUCKET_DESIRED_STATE}.>"


class Write(NamedTuple):
    at: float  # time.monotonic() when the tap saw it
    device: str
    deployment: str
    value: bytes | None  # None: deleted or purged


class DesiredTap:
    """Records every desired-state write from :meth:`start` to :meth:`stop`."""

    def __init__(self, bus: Bus, loop: EventLoopThread) -> None:
        self._bus, self._loop = bus, loop
        self._lock = threading.Lock()
        self._writes: list[Write] = []
        self._sub: Subscription | None = None

    def start(self) -> Self:
        async def go() -> Subscription:
            sub = await self._bus.transport.subscribe(SUBJECTS, self._seen)
            await self._bus.transport.flush(timeout=10)
            return sub

        self._sub = self._loop.run(go(), timeout=30)
        return self

    def _seen(self, msg: Message) -> None:
        self._record(msg)

    def _record(self, msg: Message) -> Write:
        """Keep the write ``msg`` is, and return it (a subclass may see it too)."""
        key = msg.subject.removeprefix(f"$KV.{BUCKET_DESIRED_STATE}.")
        device, _, deployment = key.partition(".")
        op = (msg.headers or {}).get("KV-Operation")
        write = Write(time.monotonic(), device, deployment, None if op else bytes(msg.data))
        with self._lock:
            self._writes.append(write)
        return write

    def writes(self, deployment: str | None = None) -> list[Write]:
        """The writes so far (of ``deployment`` only, if given), in the order seen."""
        with self._lock:
            return [w for w in self._writes if deployment is None or w.deployment == deployment]

    def stop(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            self._loop.run(sub.unsubscribe(), timeout=10)
