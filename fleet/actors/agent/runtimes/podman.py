"""The podman runtime: a deployment's containers, behind the runtime port.

Why it exists: it is the ``"podman"`` implementation of :class:`~.port.WorkloadRuntime`,
the rules the reconciler used to hold itself, moved behind the port unchanged. It speaks
to podman only through :class:`~fleet.runtime.podman.port.ContainerRuntime` (the REST
adapter in ``fleet/runtime/podman``, or the simulated runtime of the demo and the unit
tests). A pass (:meth:`PodmanWorkload.ensure`) goes in this order, so that an update
never breaks what runs before the new thing can be made (docs/agent.md):

1. pull every image the new and changed containers need; a failed pull stops the pass
   with nothing touched;
2. remove containers no longer in the score (and leftovers of an interrupted replace);
3. create the new containers; replace the changed ones (:mod:`..replacing`);
4. start containers that were created but never started; replace, with a fresh
   container, one that has run and stopped but should run (never ``start`` it again:
   see :data:`..health.RESTART_GRACE`);
5. look at every container's health (:mod:`..health`, :mod:`..crash_loops`).

Containers are the deployment's when they carry its owner labels
(:func:`~fleet.runtime.podman.port.owner_labels`), checked again here; each carries the
hash of its spec, so a changed spec is replaced and an unchanged one adopted as is.

What it must never do: touch a container without its labels, start a container that
has run before, or loop inside a pass (a retry is :class:`~.port.RetryLater`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

from fleet.contracts import (
    ContainerSpec,
    DeploymentName,
    DeviceId,
    Phase,
    PodmanScore,
    ReconcileScore,
)
from fleet.errors import PermanentError
from fleet.runtime.podman.port import (
    CONTAINER_LABEL,
    Container,
    ContainerEvent,
    ContainerFailed,
    ContainerRuntime,
    ImagePullFailed,
    is_owned,
    owner_labels,
)

from ..crash_loops import DEFAULT_RESTARTS, DEFAULT_WINDOW
from ..health import RESTART_GRACE, Health, should_run
from ..planning import plan_pass
from ..replacing import Replacer
from ..tally import AgentTally
from .port import DriftEvent, EventStream, Observed, Progress, RetryLater, Unit
from .registry import RuntimeRegistry

SCORE_TYPE = "podman"


class PodmanWorkloads:
    """The device-wide half: one per device, over one container runtime."""

    score_type = SCORE_TYPE

    def __init__(
        self,
        *,
        runtime: ContainerRuntime,
        device_id: DeviceId,
        stop_timeout: float = 10.0,
        pull_timeout: float = 300.0,
        max_backoff: float = 30.0,
        crash_window: float = DEFAULT_WINDOW,
        crash_restarts: int = DEFAULT_RESTARTS,
        restart_grace: float = RESTART_GRACE,
        clock: Callable[[], float] = time.monotonic,
        tally: AgentTally | None = None,
    ) -> None:
        self.runtime = runtime
        self._device = device_id
        self._options = (stop_timeout, pull_timeout, max_backoff, restart_grace)
        self._crash = (crash_window, crash_restarts)
        self._clock = clock
        self._tally = tally if tally is not None else AgentTally()

    def version(self) -> tuple[str, str]:
        return self.runtime.version()

    def workload(self, deployment: DeploymentName) -> PodmanWorkload:
        stop_timeout, pull_timeout, max_backoff, grace = self._options
        return PodmanWorkload(
            runtime=self.runtime, device_id=self._device, deployment=deployment,
            replacer=Replacer(runtime=self.runtime, stop_timeout=stop_timeout),
            health=Health(runtime=self.runtime, window=self._crash[0],
                          restarts=self._crash[1], clock=self._clock),
            pull_timeout=pull_timeout, max_backoff=max_backoff, restart_grace=grace,
            clock=self._clock, tally=self._tally,
        )  # fmt: skip

    def deployments(self) -> Mapping[str, int]:
        found = self.runtime.list_containers(labels=owner_labels(self._device))
        deployments: dict[str, int] = {}
        for container in found:
            if not is_owned(container, self._device) or container.deployment is None:
                continue
            revision = container.revision or 0
            deployments[container.deployment] = max(
                deployments.get(container.deployment, 0), revision
            )
        return deployments

    def drift_events(
        self, *, on_drift: Callable[[DriftEvent], None], on_error: Callable[[BaseException], None]
    ) -> EventStream:
        def changed(event: ContainerEvent) -> None:
            died = event.action == "died" and bool(event.exit_code)
            on_drift(
                DriftEvent(
                    deployment=event.deployment,
                    unit=event.container,
                    exit_code=event.exit_code if died else None,
                )
            )

        return self.runtime.events(
            labels=owner_labels(self._device), on_event=changed, on_error=on_error
        )


class PodmanWorkload:
    """One deployment's containers (see the module doc for a pass)."""

    def __init__(
        self,
        *,
        runtime: ContainerRuntime,
        device_id: DeviceId,
        deployment: DeploymentName,
        replacer: Replacer,
        health: Health,
        pull_timeout: float,
        max_backoff: float,
        restart_grace: float,
        clock: Callable[[], float],
        tally: AgentTally,
    ) -> None:
        self._runtime = runtime
        self._device = device_id
        self._deployment = deployment
        self._labels = owner_labels(device_id, deployment)
        self._replacer = replacer
        self._health = health
        self._pull_timeout = pull_timeout
        self._max_backoff = max_backoff
        self._grace = restart_grace
        self._clock = clock
        self._tally = tally

    def observe(self) -> Observed:
        """This deployment's containers (the labels checked again: never another's)."""
        found = self._runtime.list_containers(labels=self._labels)
        owned = [c for c in found if is_owned(c, self._device) and c.deployment == self._deployment]
        units = tuple(
            Unit(
                name=c.labels.get(CONTAINER_LABEL, c.name),
                id=c.id,
                running=c.running,
                revision=c.revision,
            )
            for c in owned
        )
        revision = max((c.revision for c in owned if c.revision is not None), default=None)
        return Observed(units=units, revision=revision, found=owned)

    def exited(self, exits: Iterable[tuple[str, int]]) -> None:
        self._health.exited(exits)

    def remove(self, progress: Progress) -> bool:
        owned = self._owned(self.observe())
        if owned:
            progress.report(Phase.STOPPING)
            for container in owned:
                self._replacer.stop_and_remove(container.id)
        return bool(owned)

    def ensure(
        self, score: ReconcileScore, *, revision: int, observed: Observed, progress: Progress
    ) -> str | None:
        """One pass (see the module doc); returns what is unhealthy, or None."""
        if not isinstance(score, PodmanScore):  # the registry routes by type: a bug
            raise PermanentError(f"the podman runtime was given a {type(score).__name__}")
        plan = plan_pass(self._device, self._deployment, score, self._owned(observed))
        wanted, current, strays, changed = plan
        for image in dict.fromkeys(wanted[name].image for name in changed):
            self._pull(image, progress)  # 1. make-before-break: every image first
        if strays or changed:
            progress.touched()
        for container in strays:  # 2.
            if container.running:
                progress.breaking()
            self._replacer.remove(container.id)
        ids: dict[str, str] = {}
        for name in changed:  # 3.
            progress.report(Phase.STARTING)
            labels = self._replacer.labels(self._labels, wanted[name], revision)
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
                        on_break=progress.breaking,
                    )
            except ContainerFailed as exc:
                _start_failed(progress, wanted[name], exc)
        for name, spec in wanted.items():  # 4.
            if name not in changed:
                ids[name] = self._keep_running(name, spec, current[name], revision, progress)
        return self._health.check({name: (wanted[name], cid) for name, cid in ids.items()})  # 5.

    @staticmethod
    def _owned(observed: Observed) -> list[Container]:
        found = observed.found
        if not isinstance(found, list):  # observed by another runtime: a bug
            raise PermanentError("the podman runtime was given another runtime's observation")
        return found

    def _keep_running(
        self,
        name: str,
        spec: ContainerSpec,
        container: Container,
        revision: int,
        progress: Progress,
    ) -> str:
        """Step 4 for a container whose spec is unchanged; returns its (new) id."""
        if container.running or container.state == "paused":
            return container.id
        if container.state in ("created", "configured"):  # never started: safe to start
            progress.report(Phase.STARTING)
            progress.touched()
            try:
                self._replacer.start(container.id)
            except ContainerFailed as exc:
                _start_failed(progress, spec, exc)
            return container.id
        if container.state not in ("exited", "stopped"):  # stopping, removing: look again
            progress.check_later(1.0, reason="settle")
            return container.id
        if not should_run(spec, container):
            return container.id
        since = time.time() - container.exited_at if container.exited_at else self._grace
        if since < self._grace:  # podman's restart policy goes first
            progress.check_later(self._grace - since, reason="settle")
            return container.id
        progress.report(Phase.STARTING)
        labels = self._replacer.labels(self._labels, spec, revision)
        progress.breaking()
        progress.touched()
        try:
            return self._replacer.renew(name=name, spec=spec, labels=labels, old=container)
        except ContainerFailed as exc:
            _start_failed(progress, spec, exc)

    def _pull(self, image: str, progress: Progress) -> None:
        if self._runtime.image_present(image):
            return
        if progress.phase is not Phase.PULLING:
            progress.report(Phase.PULLING, f"pulling {image}")  # retries keep their reason
        started = self._clock()
        try:
            self._runtime.pull(image, timeout=self._pull_timeout)
        except ImagePullFailed as exc:
            self._tally.pulled(self._clock() - started, ok=False)
            delay = min(self._max_backoff, max(1.0, progress.backoff * 2))
            if exc.not_found:
                progress.report(
                    Phase.FAILED,
                    f"image {image} was not found in its registry; check the name and tag "
                    f"({exc}); retrying in {delay:.0f}s",
                )
            else:
                progress.report(Phase.PULLING, f"{exc}; retrying in {delay:.0f}s")
            raise RetryLater from exc
        except BaseException:
            self._tally.pulled(self._clock() - started, ok=False)
            raise
        self._tally.pulled(self._clock() - started, ok=True)


def _start_failed(progress: Progress, spec: ContainerSpec, exc: ContainerFailed) -> NoReturn:
    """Podman refused to create or start a container (a taken port...): retry later.
    A container created but not started stays, and is started by a later pass."""
    progress.report(Phase.FAILED, f"container {spec.name!r} did not start: {exc}")
    raise RetryLater from exc


def podman_only(
    runtime: ContainerRuntime, *, device_id: DeviceId, **options: Any
) -> RuntimeRegistry:
    """The runtimes of a device that runs podman scores only, over ``runtime``
    (``options``: those of :class:`PodmanWorkloads`)."""
    return RuntimeRegistry([PodmanWorkloads(runtime=runtime, device_id=device_id, **options)])
