"""Which runtime runs which score ``type`` on this device.

Why it exists: a desired entry names its score's ``type``; the agent must find the
runtime of that type, or say plainly that this device has none (``Failed``, naming
``type``: what an agent without that runtime has always said of an unknown type). The
device's info lists :attr:`RuntimeRegistry.types`, so the operator can tell which
devices run what.

What it must never do: pick a runtime for a type it was not given one for (no default,
no fallback to podman).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from fleet.contracts import ReconcileScore

from .port import WorkloadRuntime


def score_type(score: ReconcileScore) -> str:
    """The ``type`` tag of ``score`` (``"podman"``)."""
    return str(type(score).__struct_config__.tag)


def unsupported_message(deployment: str, kind: str, types: Iterable[str]) -> str:
    """The ``Failed`` message for an entry whose type has no runtime here."""
    runs = ", ".join(types) or "nothing"
    return (
        f"the desired state of '{deployment}' cannot run on this device: its `type` "
        f"{kind!r} has no runtime here (this device runs: {runs})"
    )


class RuntimeRegistry:
    """Score type -> runtime, in the order given (the first is the device's main one:
    its name and version go in the device's inventory)."""

    def __init__(self, runtimes: Iterable[WorkloadRuntime]) -> None:
        self._by_type: dict[str, WorkloadRuntime] = {}
        for runtime in runtimes:
            if runtime.score_type in self._by_type:
                raise ValueError(f"two runtimes for score type {runtime.score_type!r}")
            self._by_type[runtime.score_type] = runtime
        if not self._by_type:
            raise ValueError("a device needs at least one runtime")

    @property
    def types(self) -> tuple[str, ...]:
        """The score types this device runs (what its info lists)."""
        return tuple(self._by_type)

    @property
    def main(self) -> WorkloadRuntime:
        return next(iter(self._by_type.values()))

    def get(self, kind: str) -> WorkloadRuntime | None:
        return self._by_type.get(kind)

    def for_score(self, score: ReconcileScore) -> WorkloadRuntime | None:
        return self._by_type.get(score_type(score))

    def __iter__(self) -> Iterator[WorkloadRuntime]:
        return iter(self._by_type.values())

    def __contains__(self, kind: object) -> bool:
        return kind in self._by_type
