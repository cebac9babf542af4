"""The device's drift streams: one per runtime, each event told to the device actor.

Why it exists: every runtime reports drift (a unit died, was stopped or removed by hand)
on a stream of its own, on a thread of its own. The device actor routes each event to
its deployment's reconciler; this class keeps the streams open: it opens one per score
type, tells the actor :class:`~.messages.ContainerChanged` per event and
:class:`~.messages.EventsBroken` when a stream breaks (the actor reopens it a second later,
:meth:`DriftStreams.open`), and closes them all when the agent stops.

What it must never do: tell the actor anything after :meth:`DriftStreams.close`, or raise
into the actor when a runtime's service is away (a stream that cannot open is broken).
"""

from __future__ import annotations

import contextlib
from typing import Any

import pykka

from fleet.errors import FleetError

from .messages import ContainerChanged, EventsBroken
from .runtimes.port import DriftEvent, EventStream
from .runtimes.registry import RuntimeRegistry


class DriftStreams:
    """The open drift stream of each of the device's runtimes."""

    def __init__(self, runtimes: RuntimeRegistry, ref: pykka.ActorRef[Any]) -> None:
        self._runtimes = runtimes
        self._ref = ref
        self._open: dict[str, EventStream] = {}  # score type -> its open stream

    def open_all(self) -> None:
        for kind in self._runtimes.types:
            self.open(kind)

    def open(self, kind: str) -> None:
        """Open the stream of the runtime of score type ``kind``."""
        runtime = self._runtimes.get(kind)
        if runtime is None:
            return
        ref = self._ref

        def broken(exc: BaseException) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(EventsBroken(reason=repr(exc), score_type=kind))

        def changed(event: DriftEvent) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(ContainerChanged(event=event))

        try:
            self._open[kind] = runtime.drift_events(on_drift=changed, on_error=broken)
        except FleetError as exc:
            broken(exc)

    def broken(self, kind: str) -> None:
        """The stream of ``kind`` broke (it closed itself)."""
        self._open.pop(kind, None)

    def close(self) -> None:
        for stream in self._open.values():
            stream.close()
        self._open.clear()
