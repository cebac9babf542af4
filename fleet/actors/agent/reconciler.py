"""One deployment on this device: drive its workload to the desired score.

Why it exists: each deployment converges on its own, so a bad image or a taken port
in one never holds up another. A :class:`DeploymentReconciler` is a pykka
``ThreadingActor``: a device runs a handful of deployments, and its own thread is
where the blocking runtime calls belong (never the event loop).

It drives the workload through the runtime of its score's ``type``
(:mod:`.runtimes.port`, found in a :class:`~.runtimes.registry.RuntimeRegistry`; podman's
is :mod:`.runtimes.podman`, whose pass makes an update never break what runs before the
new thing can be made). Here is what every runtime shares: every phase change is
reported as a ``DeploymentState`` with the revision of the desired entry it applies,
and, while that revision is not (yet) what runs, ``running_revision``: the revision that
does (after a restart, what the observed workload was made for); a failed pass is
retried with backoff; a deleted entry removes the workload of every runtime.

A desired entry that does not decode, or whose type has no runtime here, is reported
``Failed`` (naming the field) while the last valid score keeps running and being
repaired.

What it must never do: touch a workload that is not its deployment's, block the loop,
or loop forever inside one message (retries are scheduled messages, with backoff).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import pykka

from fleet.contracts import (
    DeploymentName,
    DeploymentState,
    DeviceId,
    Phase,
    ReconcileScore,
)
from fleet.errors import FleetError, TemporaryError
from fleet.runtime.actorkit.failfast import SupervisedActor
from fleet.runtime.aiokit.timers import Cancellable, TimerPort
from fleet.runtime.podman.port import ContainerRuntime

from .crash_loops import DEFAULT_RESTARTS, DEFAULT_WINDOW
from .health import RESTART_GRACE
from .messages import Apply, Check, ReconcilerIdle, Remove
from .phases import PhaseReports
from .runtimes.podman import podman_only
from .runtimes.port import Condition, ReportsCondition, RetryLater, Unreported, Workload
from .runtimes.registry import RuntimeRegistry, score_type, unsupported_message
from .tally import AgentTally

logger = logging.getLogger(__name__)


class DeploymentReconciler(SupervisedActor):
    """One deployment's reconciler; it is the :class:`~.runtimes.port.Progress` of the
    passes it asks of its runtime.

    ``runtimes``: the device's runtimes; without it, a podman-only registry over
    ``runtime`` with the podman options given here."""

    # A runtime call stuck past the stop timeout must not keep the process alive.
    use_daemon_thread = True

    def __init__(
        self,
        *,
        device_id: DeviceId,
        deployment: DeploymentName,
        report: Callable[[DeploymentState], None],
        timers: TimerPort,
        parent: pykka.ActorRef[Any] | None = None,
        stop_timeout: float = 10.0,
        pull_timeout: float = 300.0,
        max_backoff: float = 30.0,
        crash_window: float = DEFAULT_WINDOW,
        crash_restarts: int = DEFAULT_RESTARTS,
        restart_grace: float = RESTART_GRACE,
        clock: Callable[[], float] = time.monotonic,
        tally: AgentTally | None = None,
        runtime: ContainerRuntime | None = None,
        runtimes: RuntimeRegistry | None = None,
    ) -> None:
        super().__init__()
        self._device = device_id
        self._deployment = deployment
        self._timers = timers
        self._parent = parent
        self._max_backoff = max_backoff
        self._clock = clock
        self._tally = tally if tally is not None else AgentTally()
        if runtimes is None:
            if runtime is None:
                raise TypeError("a reconciler needs runtimes, or a container runtime")
            runtimes = podman_only(
                runtime, device_id=device_id, stop_timeout=stop_timeout,
                pull_timeout=pull_timeout, max_backoff=max_backoff, crash_window=crash_window,
                crash_restarts=crash_restarts, restart_grace=restart_grace, clock=clock,
                tally=self._tally,
            )  # fmt: skip
        self._runtimes = runtimes
        self._workloads: dict[str, Workload] = {}  # score type -> this deployment's driver
        self._kind = runtimes.main.score_type  # the runtime the pass is talking to
        self._revision = 0  # the desired revision being applied (reported)
        self._score: ReconcileScore | None = None  # the last valid score (of _score_revision)
        self._score_revision = 0
        self._error: str | None = None  # the entry at _revision is malformed
        self._removing = False
        self._sweep = False
        self._applied: int | None = None  # the revision whose containers run
        self._intact = True  # this pass has not touched what runs yet
        self._touched = False  # this pass created, started, replaced or removed a unit
        self._phases = PhaseReports(device=device_id, deployment=deployment, send=report)
        self._backoff = 0.0
        self._next: tuple[float, Cancellable] | None = None

    # -- messages ---------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Apply):
            self._revision, self._removing, self._backoff = message.revision, False, 0.0
            score = message.score
            if score is not None and self._runtimes.for_score(score) is None:
                kind = score_type(score)
                message = Apply(
                    revision=message.revision,
                    score=None,
                    error=unsupported_message(self._deployment, kind, self._runtimes.types),
                )
            if message.score is not None:
                self._score, self._score_revision = message.score, message.revision
                self._error = None
            else:
                self._error = message.error or "the desired state is malformed"
            if self._phases.phase is None:
                self._report(Phase.PENDING)
            self._converge(asked=True)
        elif isinstance(message, Remove):
            self._score, self._error, self._removing = None, None, True
            self._sweep = message.sweep
            self._revision = message.revision
            self._converge(asked=True)
        elif isinstance(message, Check):
            if self._score is not None:
                self._workload(score_type(self._score)).exited(message.exits)
            if self._score is not None or self._removing or self._error is not None:
                self._converge(asked=message.reason == "retry")
        return None

    def on_stop(self) -> None:
        if self._next is not None:
            self._next[1].cancel()

    # -- converging ---------------------------------------------------------------------

    def _converge(self, *, asked: bool) -> None:
        """One pass; ``asked``: for a desired-state change (or its retry), not a check
        that found drift (what the tally counts as a drift repair when it touched one)."""
        if self._next is not None:
            self._next[1].cancel()
            self._next = None
        self._intact, self._touched = True, False
        started, outcome = self._clock(), "retry"
        try:
            if self._removing:
                self._remove_all()
                outcome = "removed"
            elif self._score is None:
                self._report(Phase.FAILED, self._error)
                outcome = "failed"
            else:
                unhealthy = self._apply(self._score)
                self._backoff = 0.0
                self._applied = self._score_revision
                condition = self._condition(self._score)
                if self._error is not None or unhealthy is not None:
                    self._report(Phase.FAILED, self._error or unhealthy, condition=condition)
                    outcome = "failed"
                else:
                    self._report(Phase.RUNNING, condition=condition)
                    outcome = "running"
        except RetryLater:
            self._schedule_retry()
        except TemporaryError as exc:  # the runtime's service away: say so, try again
            self._report(Phase.FAILED, f"{self._kind} is not reachable: {exc}")
            self._schedule_retry()
        except FleetError as exc:
            self._report(Phase.FAILED, str(exc))
            self._schedule_retry()
        finally:
            drift = not asked and self._touched
            self._tally.reconciled(self._clock() - started, outcome=outcome, drift=drift)

    def _schedule_retry(self) -> None:
        self._backoff = min(self._max_backoff, max(1.0, self._backoff * 2))
        self._check_later(self._backoff, reason="retry")

    def _check_later(self, delay: float, *, reason: str) -> None:
        """Look again after ``delay`` (the earliest of several requests wins)."""
        due = self._clock() + delay
        if self._next is not None:
            if self._next[0] <= due:
                return
            self._next[1].cancel()
        handle = self._timers.tell_later(self.actor_ref, Check(reason=reason), delay=delay)
        self._next = (due, handle)

    def _workload(self, kind: str) -> Workload:
        """This deployment's driver in the runtime of score type ``kind`` (made once)."""
        self._kind = kind
        workload = self._workloads.get(kind)
        if workload is None:
            runtime = self._runtimes.get(kind)
            if runtime is None:  # Apply turned such a score into an error
                raise FleetError(unsupported_message(self._deployment, kind, self._runtimes.types))
            workload = self._workloads[kind] = runtime.workload(self._deployment)
        return workload

    def _remove_all(self) -> None:
        removed = False
        for kind in self._runtimes.types:  # whatever type made them, all of it goes
            removed = self._workload(kind).remove(self) or removed
        if removed or not self._sweep:
            self._report(Phase.REMOVED)
        self._removing, self._sweep, self._applied = False, False, None
        if self._parent is not None:
            with contextlib.suppress(pykka.ActorDeadError):  # the agent is stopping
                self._parent.tell(
                    ReconcilerIdle(deployment=self._deployment, revision=self._revision)
                )

    def _apply(self, score: ReconcileScore) -> str | None:
        """One pass of the score's runtime; returns what is unhealthy, or None. Once it
        runs, what another runtime holds of this deployment (its score's type changed)
        is removed, without a report of its own."""
        kind = score_type(score)
        workload = self._workload(kind)
        observed = workload.observe()
        if self._applied is None:  # after a restart: what the workload was made for
            self._applied = observed.revision
        unhealthy = workload.ensure(
            score, revision=self._score_revision, observed=observed, progress=self
        )
        for other in self._runtimes.types:  # none but podman today: nothing to look at
            if other != kind and unhealthy is None:
                leftover = self._workload(other)
                if leftover.observe().present:
                    self._intact, self._touched = False, True
                    leftover.remove(Unreported(self))
        return unhealthy

    # -- the pass's progress (runtimes.port.Progress) -------------------------------------

    @property
    def phase(self) -> Phase | None:
        return self._phases.phase

    @property
    def backoff(self) -> float:
        return self._backoff

    def report(self, phase: Phase, message: str | None = None) -> None:
        self._report(phase, message)

    def breaking(self) -> None:
        self._intact = False

    def touched(self) -> None:
        self._touched = True

    def check_later(self, delay: float, *, reason: str) -> None:
        self._check_later(delay, reason=reason)

    # -- reporting ------------------------------------------------------------------------

    def _running_revision(self, phase: Phase) -> int | None:
        """What runs, when it is not the desired revision and this pass left it intact."""
        if phase in (Phase.STOPPING, Phase.REMOVED) or not self._intact:
            return None
        if self._applied is None or self._applied == self._revision:
            return None
        return self._applied

    def _condition(self, score: ReconcileScore) -> Condition | None:
        """The health and exit code the score's workload found (issue 14), if it says."""
        workload = self._workloads.get(score_type(score))
        return workload.condition() if isinstance(workload, ReportsCondition) else None

    def _report(
        self, phase: Phase, message: str | None = None, *, condition: Condition | None = None
    ) -> None:
        if self._error is not None and phase not in (Phase.FAILED, Phase.PENDING):
            return  # a malformed entry: repairs of the last valid score go unreported
        if self._error is not None:
            condition = None  # about the last valid score, not the entry reported on
        self._phases.report(
            phase, message, revision=self._revision, running=self._running_revision(phase),
            health=condition.health if condition else None,
            exit_code=condition.exit_code if condition else None,
        )  # fmt: skip
