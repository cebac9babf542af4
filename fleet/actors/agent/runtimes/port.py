"""The runtime port: what a deployment's reconciler asks of the runtime of its score's type.

Why it exists: a score is a tagged union on ``type`` (``"podman"`` today; virtual machines
and Kubernetes clusters later). The reconciler actor (:mod:`..reconciler`) owns what every
runtime shares: the messages, the revisions it reports, retries with backoff, the drift
tally, removal on delete. A runtime owns how one kind of workload is made to match a
score. The actor sees only these Protocols; a :class:`WorkloadRuntime` per score type is
found in the :class:`~.registry.RuntimeRegistry` (docs/runtimes.md says how to add one).

A runtime works in two halves: device-wide (:class:`WorkloadRuntime`: its name and
version, the deployments it holds workloads of, a stream of drift events) and one
:class:`Workload` per deployment (observe, ensure, remove), which may keep state between
passes (crash-loop samples...). Every call blocks and runs on the reconciler's own
thread, never on the event loop.

During a pass a workload tells the reconciler what happens through :class:`Progress`:
each phase (``Pulling``, ``Starting``, ``Stopping``, ``Failed``), that it is about to
stop what runs (:meth:`Progress.breaking`), that it changed something
(:meth:`Progress.touched`), and when to look again. It ends a pass early, after reporting
why, by raising :class:`RetryLater`; a :class:`~fleet.errors.TemporaryError` means its
service is away (reported ``Failed``, retried); another :class:`~fleet.errors.FleetError`
is reported ``Failed`` with its message and retried.

What it must never do: name a client library (this is the port; runtimes live beside it
and talk to the world through ``fleet/runtime``), or carry an actor reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from fleet.contracts import DeploymentName, Phase, ReconcileScore
from fleet.contracts.state import Health


class RetryLater(Exception):
    """Stop this pass; it was reported already; the reconciler tries again after a backoff."""


@dataclass(frozen=True, kw_only=True)
class Unit:
    """One thing a workload runs (a container, a virtual machine, a Kubernetes object)."""

    name: str  # its name in the score
    id: str  # the runtime's own id for it
    running: bool
    revision: int | None  # the desired revision it was made for, if it says


@dataclass(frozen=True, kw_only=True)
class Observed:
    """What runs of one deployment under one runtime, as found now.

    ``revision``: the highest desired revision its units were made for (after an agent
    restart: what runs), None when nothing says. ``found``: the runtime's own record of
    what it saw, handed back to :meth:`Workload.ensure` so a pass looks only once.
    """

    units: tuple[Unit, ...]
    revision: int | None
    found: object = field(default=None, compare=False)

    @property
    def present(self) -> bool:
        return bool(self.units)


@dataclass(frozen=True, kw_only=True)
class DriftEvent:
    """Something happened to a workload outside the agent's pass (it died, was stopped,
    removed...): the device actor routes it to the deployment's reconciler."""

    deployment: str | None  # None: not one of ours; ignored
    unit: str | None = None  # its name in the score
    exit_code: int | None = None  # a non-zero exit of the unit's process, for crash reports


class Progress(Protocol):
    """The pass a workload works for (the reconciler implements it)."""

    @property
    def phase(self) -> Phase | None:
        """The phase last reported for this deployment."""
        ...

    @property
    def backoff(self) -> float:
        """The delay before the current retry (0 on the first try), for messages."""
        ...

    def report(self, phase: Phase, message: str | None = None) -> None:
        """Say ``phase`` (only ``Failed`` and ``Pulling`` keep their message)."""
        ...

    def breaking(self) -> None:
        """What runs is about to be stopped or replaced (it no longer runs intact)."""
        ...

    def touched(self) -> None:
        """This pass made, started, replaced or removed a unit (a drift repair when the
        pass was not asked for by a desired-state change)."""
        ...

    def check_later(self, delay: float, *, reason: str) -> None:
        """Look again after ``delay`` seconds (a unit is settling)."""
        ...


class Unreported:
    """A :class:`Progress` whose phases go unreported (the reconciler removing what
    another runtime left of a deployment whose score changed type: it is being made to
    run, not stopping); everything else goes to ``inner``."""

    def __init__(self, inner: Progress) -> None:
        self._inner = inner
        self.phase, self.backoff = inner.phase, inner.backoff

    def report(self, phase: Phase, message: str | None = None) -> None:
        return None

    def breaking(self) -> None:
        self._inner.breaking()

    def touched(self) -> None:
        self._inner.touched()

    def check_later(self, delay: float, *, reason: str) -> None:
        self._inner.check_later(delay, reason=reason)


class Workload(Protocol):
    """One deployment's workload under one runtime."""

    def observe(self) -> Observed:
        """What runs now (only units carrying this device's and deployment's marks)."""
        ...

    def ensure(
        self, score: ReconcileScore, *, revision: int, observed: Observed, progress: Progress
    ) -> str | None:
        """Make what runs match ``score`` (the desired ``revision``), starting from
        ``observed``: reuse a unit made from the same spec (adopt), replace a changed one
        make-before-break, remove what the score no longer has, repair what drifted.
        Returns what is unhealthy, in words, or None when it all runs."""
        ...

    def remove(self, progress: Progress) -> bool:
        """Remove every unit (reporting ``Stopping`` first if there is any); returns
        whether there was any."""
        ...

    def exited(self, exits: Iterable[tuple[str, int]]) -> None:
        """Non-zero exits (unit name, code) seen in drift events since the last pass."""
        ...


@dataclass(frozen=True, kw_only=True)
class Condition:
    """What a workload's last pass found beyond its phase (the report's optional fields):
    its health checks' verdict, and how a unit that stays ended ended."""

    health: Health | None = None
    exit_code: int | None = None


@runtime_checkable
class ReportsCondition(Protocol):
    """A :class:`Workload` that knows its :class:`Condition` (podman's does; a runtime
    without health checks or exits need not)."""

    def condition(self) -> Condition:
        """As found by the last :meth:`Workload.ensure`."""
        ...


class EventStream(Protocol):
    def close(self) -> None:
        """Stop the stream; no callback runs after this returns."""


class WorkloadRuntime(Protocol):
    """The device-wide half of the runtime of one score type."""

    @property
    def score_type(self) -> str:
        """The score ``type`` it runs (``"podman"``)."""
        ...

    def version(self) -> tuple[str, str]:
        """(name, version) of what it drives, e.g. ("podman", "4.3.1")."""
        ...

    def workload(self, deployment: DeploymentName) -> Workload:
        """A new driver for ``deployment``'s workload (one per reconciler)."""
        ...

    def deployments(self) -> Mapping[str, int]:
        """Every deployment with a unit of this device here, with the highest revision
        its units were made for (0 if none says): the orphan sweep's view."""
        ...

    def drift_events(
        self, *, on_drift: Callable[[DriftEvent], None], on_error: Callable[[BaseException], None]
    ) -> EventStream:
        """Stream drift events of this device's units (on a thread of its own).
        ``on_error`` is called once if the stream breaks; the caller opens a new one."""
        ...
