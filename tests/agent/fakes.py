"""In-memory stand-ins behind the agent's ports, for unit tests."""

from __future__ import annotations

from typing import Any

from fleet.devtools.simulated_runtime import SimulatedRuntime


class FakeRuntime(SimulatedRuntime):
    """The simulated runtime with an empty registry: tests publish the images they pull."""

    def __init__(self) -> None:
        super().__init__(registry=set(), version=("podman", "4.3.1"))


class FakeTimers:
    """Records scheduled messages; tests fire them by hand."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[Any, object, float]] = []

    def tell_later(self, ref: Any, message: object, *, delay: float) -> Any:
        self.scheduled.append((ref, message, delay))

        class Handle:
            def cancel(self) -> None:
                return None

        return Handle()
