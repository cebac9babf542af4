"""In-memory stand-ins behind the agent's ports, for unit tests."""

from __future__ import annotations

from typing import Any

from fleet.devtools.simulated_runtime import SimulatedRuntime
from fleet.runtime.podman.port import ContainerFailed


class FakeRuntime(SimulatedRuntime):
    """The simulated runtime with an empty registry: tests publish the images they pull.

    ``start_error``: the message a start with a taken port fails with (podman's words
    by default)."""

    registry: set[str]  # never None here: an image a test has not published is missing

    def __init__(self) -> None:
        super().__init__(registry=set(), version=("podman", "4.3.1"))
        self.start_error: str | None = None

    def start(self, container_id: str) -> None:
        spec = self.specs[container_id]
        taken = any(p.host_port in self.taken_ports for p in spec.ports or ())
        if taken and self.start_error is not None:
            self.calls.append(f"start {container_id}")
            raise ContainerFailed(self.start_error)
        super().start(container_id)


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
