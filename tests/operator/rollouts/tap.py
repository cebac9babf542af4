"""The desired-state tap of the load swarm (:class:`loadtest.tap.DesiredTap`: every write,
in order, from a core subscription), with the questions the rollout tests ask of it, and
a trigger for the crash tests: act (SIGKILL) the moment a Deployment's first write is seen."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.transport import Message
from loadtest.tap import DesiredTap as _Tap
from loadtest.tap import Write


class Fired:
    """A trigger of :meth:`DesiredTap.on_first_write`: ``event`` is set once it acted,
    ``at`` (``time.monotonic()``) says when."""

    def __init__(self, deployment: str, act: Callable[[], None]) -> None:
        self.deployment, self.act = deployment, act
        self.event = threading.Event()
        self.at: float | None = None
        self._once = threading.Lock()

    def fire(self) -> None:
        with self._once:
            if self.event.is_set():
                return
            self.act()
            self.at = time.monotonic()
            self.event.set()

    def wait(self, timeout: float) -> bool:
        return self.event.wait(timeout)


class DesiredTap(_Tap):
    def __init__(self, bus: Bus, loop: EventLoopThread) -> None:
        super().__init__(bus, loop)
        self._triggers: list[Fired] = []

    def devices_given(self, deployment: str, value: bytes) -> set[str]:
        """Every device that was ever written ``value`` for ``deployment``."""
        return {w.device for w in self.writes(deployment) if w.value == value}

    def puts_per_device(self, deployment: str, value: bytes) -> Counter[str]:
        return Counter(w.device for w in self.writes(deployment) if w.value == value)

    def on_first_write(self, deployment: str, act: Callable[[], None]) -> Fired:
        """Run ``act`` on the tap's own thread as the first write of ``deployment`` arrives
        (at once if one already has): no polling thread that a loaded machine could starve
        while the writer finishes its batch."""
        trigger = Fired(deployment, act)
        with self._lock:
            self._triggers.append(trigger)
        if self.writes(deployment):
            trigger.fire()
        return trigger

    def _record(self, msg: Message) -> Write:
        write = super()._record(msg)
        with self._lock:
            due = [t for t in self._triggers if t.deployment == write.deployment]
        for trigger in due:
            trigger.fire()
        return write
