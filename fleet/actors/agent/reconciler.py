"""One deployment on this device: drive its podman containers to the desired score.

Why it exists: each deployment converges on its own, so a bad image or a taken port
in one never holds up another. A :class:`DeploymentReconciler` is a pykka
``ThreadingActor``: a device runs a handful of deployments, and its own thread is
where the blocking podman calls belong (never the event loop).

It owns exactly the containers labelled with its device and deployment (see
:func:`~fleet.runtime.podman.port.owner_labels`); each carries the hash of its container
spec, so a spec change replaces the container and an unchanged spec is adopted as
is (an agent restart restarts nothing). Every phase change is reported as a
``DeploymentState`` with the revision of the desired entry it applies, and, while
that revision is not (yet) what runs, ``running_revision``: the revision that does.

A pass (:meth:`DeploymentReconciler._apply`) goes in this order, so that an update
never breaks what runs before the new thing can be made (docs/agent.md):

1. pull every image the new and changed containers need; a failed pull stops the pass
   with nothing touched;
2. remove containers no longer in the score (and leftovers of an interrupted replace);
3. create the new containers; replace the changed ones (:mod:`.replacing`);
4. start containers that were created but never started; replace, with a fresh
   container, one that has run and stopped but should run (never ``start`` it again:
   see :data:`.health.RESTART_GRACE`);
5. look at every container's health (:mod:`.health`, :mod:`.crash_loops`).

A desired entry that does not decode is reported ``Failed`` (naming the field) while the
last valid score keeps running and being repaired.

What it must never do: touch a container without its labels, block the loop, loop
forever inside one message (retries are scheduled messages, with backoff), or start a
container that has run before.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, NoReturn

import pykka

from fleet.contracts import (
    ContainerSpec,
    DeploymentName,
    DeploymentState,
    DeviceId,
    Phase,
    PodmanScore,
)
from fleet.errors import FleetError, TemporaryError
from fleet.runtime.actorkit.failfast import SupervisedActor
from fleet.runtime.aiokit.timers import Cancellable, TimerPort
from fleet.runtime.podman.port import (
    Container,
    ContainerFailed,
    ContainerRuntime,
    ImagePullFailed,
    is_owned,
    owner_labels,
)

from .crash_loops import DEFAULT_RESTARTS, DEFAULT_WINDOW
from .health import RESTART_GRACE, Health, should_run
from .messages import Apply, Check, ReconcilerIdle, Remove
from .phases import PhaseReports
from .planning import plan_pass
from .replacing import Replacer
from .tally import AgentTally

logger = logging.getLogger(__name__)


class _Retry(Exception):
    """Stop this pass; try again after a backoff (already reported)."""


class DeploymentReconciler(SupervisedActor):
    # A podman call stuck past the stop timeout must not keep the process alive.
    use_daemon_thread = True

    def __init__(
        self,
        *,
        device_id: DeviceId,
        deployment: DeploymentName,
        runtime: ContainerRuntime,
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
    ) -> None:
        super().__init__()
        self._device = device_id
        self._deployment = deployment
        self._runtime = runtime
        self._timers = timers
        self._parent = parent
        self._pull_timeout = pull_timeout
        self._max_backoff = max_backoff
        self._grace = restart_grace
        self._clock = clock
        self._labels = owner_labels(device_id, deployment)
        self._replacer = Replacer(runtime=runtime, stop_timeout=stop_timeout)
        self._revision = 0  # the desired revision being applied (reported)
        self._score: PodmanScore | None = None  # the last valid score (of _score_revision)
        self._score_revision = 0
        self._error: str | None = None  # the entry at _revision is malformed
        self._removing = False
        self._sweep = False
        self._applied: int | None = None  # the revision whose containers run
        self._intact = True  # this pass has not touched what runs yet
        self._touched = False  # this pass created, started, replaced or removed a container
        self._tally = tally if tally is not None else AgentTally()
        self._phases = PhaseReports(device=device_id, deployment=deployment, send=report)
        self._backoff = 0.0
        self._next: tuple[float, Cancellable] | None = None
        self._health = Health(
            runtime=runtime, window=crash_window, restarts=crash_restarts, clock=clock
        )

    # -- messages ---------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Apply):
            self._revision, self._removing, self._backoff = message.revision, False, 0.0
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
            self._health.exited(message.exits)
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
                if self._error is not None or unhealthy is not None:
                    self._report(Phase.FAILED, self._error or unhealthy)
                    outcome = "failed"
                else:
                    self._report(Phase.RUNNING)
                    outcome = "running"
        except _Retry:
            self._schedule_retry()
        except TemporaryError as exc:  # podman service away: say so, try again
            self._report(Phase.FAILED, f"podman is not reachable: {exc}")
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

    def _owned(self) -> list[Container]:
        """This deployment's containers (the labels checked again: never another's)."""
        found = self._runtime.list_containers(labels=self._labels)
        return [c for c in found if is_owned(c, self._device) and c.deployment == self._deployment]

    def _remove_all(self) -> None:
        owned = self._owned()
        if owned:
            self._report(Phase.STOPPING)
            for container in owned:
                self._replacer.stop_and_remove(container.id)
        if owned or not self._sweep:
            self._report(Phase.REMOVED)
        self._removing, self._sweep, self._applied = False, False, None
        if self._parent is not None:
            with contextlib.suppress(pykka.ActorDeadError):  # the agent is stopping
                self._parent.tell(
                    ReconcilerIdle(deployment=self._deployment, revision=self._revision)
                )

    def _apply(self, score: PodmanScore) -> str | None:
        """One pass (see the module doc); returns what is unhealthy, or None."""
        owned = self._owned()
        if self._applied is None:  # after a restart: what the containers were made for
            self._applied = max((c.revision for c in owned if c.revision is not None), default=None)
        wanted, current, strays, changed = plan_pass(self._device, self._deployment, score, owned)
        for image in dict.fromkeys(wanted[name].image for name in changed):
            self._pull(image)  # 1. make-before-break: every image first
        self._touched = bool(strays or changed)
        for container in strays:  # 2.
            self._intact = self._intact and not container.running
            self._replacer.remove(container.id)
        ids: dict[str, str] = {}
        for name in changed:  # 3.
            self._report(Phase.STARTING)
            labels = self._replacer.labels(self._labels, wanted[name], self._score_revision)
            old = current.get(name)
            try:
                if old is None:
                    ids[name] = self._replacer.create(name=name, spec=wanted[name], labels=labels)
                else:
                    ids[name] = self._replacer.replace(
                        name=name,
                        spec=wanted[name],
                        labels=labels,
                        old=old,
                        on_break=self._broken,
                    )
            except ContainerFailed as exc:
                self._start_failed(wanted[name], exc)
        for name, spec in wanted.items():  # 4.
            if name not in changed:
                ids[name] = self._keep_running(name, spec, current[name])
        return self._health.check({name: (wanted[name], cid) for name, cid in ids.items()})  # 5.

    def _broken(self) -> None:
        self._intact = False

    def _keep_running(self, name: str, spec: ContainerSpec, container: Container) -> str:
        """Step 4 for a container whose spec is unchanged; returns its (new) id."""
        if container.running or container.state == "paused":
            return container.id
        if container.state in ("created", "configured"):  # never started: safe to start
            self._report(Phase.STARTING)
            self._touched = True
            try:
                self._replacer.start(container.id)
            except ContainerFailed as exc:
                self._start_failed(spec, exc)
            return container.id
        if container.state not in ("exited", "stopped"):  # stopping, removing: look again
            self._check_later(1.0, reason="settle")
            return container.id
        if not should_run(spec, container):
            return container.id
        since = time.time() - container.exited_at if container.exited_at else self._grace
        if since < self._grace:  # podman's restart policy goes first
            self._check_later(self._grace - since, reason="settle")
            return container.id
        self._report(Phase.STARTING)
        labels = self._replacer.labels(self._labels, spec, self._score_revision)
        self._intact, self._touched = False, True
        try:
            return self._replacer.renew(name=name, spec=spec, labels=labels, old=container)
        except ContainerFailed as exc:
            self._start_failed(spec, exc)

    def _start_failed(self, spec: ContainerSpec, exc: ContainerFailed) -> NoReturn:
        """Podman refused to create or start a container (a taken port...): retry later.
        A container created but not started stays, and is started by a later pass."""
        self._report(Phase.FAILED, f"container {spec.name!r} did not start: {exc}")
        raise _Retry from exc

    def _pull(self, image: str) -> None:
        if self._runtime.image_present(image):
            return
        if self._phases.phase is not Phase.PULLING:
            self._report(Phase.PULLING, f"pulling {image}")  # retries keep their reason
        started = self._clock()
        try:
            self._runtime.pull(image, timeout=self._pull_timeout)
        except ImagePullFailed as exc:
            self._tally.pulled(self._clock() - started, ok=False)
            delay = min(self._max_backoff, max(1.0, self._backoff * 2))
            if exc.not_found:
                self._report(
                    Phase.FAILED,
                    f"image {image} was not found in its registry; check the name and tag "
                    f"({exc}); retrying in {delay:.0f}s",
                )
            else:
                self._report(Phase.PULLING, f"{exc}; retrying in {delay:.0f}s")
            raise _Retry from exc
        except BaseException:
            self._tally.pulled(self._clock() - started, ok=False)
            raise
        self._tally.pulled(self._clock() - started, ok=True)

    # -- reporting ------------------------------------------------------------------------

    def _running_revision(self, phase: Phase) -> int | None:
        """What runs, when it is not the desired revision and this pass left it intact."""
        if phase in (Phase.STOPPING, Phase.REMOVED) or not self._intact:
            return None
        if self._applied is None or self._applied == self._revision:
            return None
        return self._applied

    def _report(self, phase: Phase, message: str | None = None) -> None:
        if self._error is not None and phase not in (Phase.FAILED, Phase.PENDING):
            return  # a malformed entry: repairs of the last valid score go unreported
        self._phases.report(
            phase, message, revision=self._revision, running=self._running_revision(phase)
        )
