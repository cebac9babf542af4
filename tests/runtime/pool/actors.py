"""Small pooled actors the pool tests drive."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any

from pykka import ActorRef

from fleet.runtime.actorkit.pool import ActorPool, PooledActor


class Recorder(PooledActor):
    """Logs its life (start, each message, stop, failure) in ``events``, shared or own."""

    def __init__(
        self,
        *,
        pool: ActorPool,
        events: list[Any] | None = None,
        gate: threading.Event | None = None,
        start_delay: float = 0.0,
    ) -> None:
        super().__init__(pool=pool)
        self.events: list[Any] = [] if events is None else events
        self.gate = gate
        self.start_delay = start_delay
        self.failure: BaseException | None = None

    def on_start(self) -> None:
        time.sleep(self.start_delay)
        self.events.append("start")

    def on_receive(self, message: Any) -> Any:
        if message == "block":
            assert self.gate is not None
            self.gate.wait(10)
        elif message == "boom":
            raise ValueError(f"boom in {self}")
        elif message == "exit":
            raise SystemExit(3)
        elif message == "events":
            return list(self.events)
        self.events.append(message)
        return message

    def on_stop(self) -> None:
        self.events.append("stop")

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.failure = exception_value
        self.events.append(("failure", exception_type))

    def add(self, a: int, b: int) -> int:
        return a + b

    def forward_ask(self, other: ActorRef[Any]) -> Any:
        """The hazard: block on another actor's reply inside a handler."""
        return other.ask("hello", timeout=2)
