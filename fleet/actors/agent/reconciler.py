"""One deployment on this device: drive its podman containers to the desired score.

Why it exists: each deployment converges on its own, so a bad image or a taken port
in one never holds up another. A :class:`DeploymentReconciler` is a pykka
``ThreadingActor``: a device runs a handful of deployments, and its own thread is
where the blocking podman calls belong (never the event loop).

It owns exactly the containers labelled with its device and deployment (see
:func:`~fleet.runtime.podman.owner_labels`); each carries the hash of its container
spec, so a spec change replaces the container and an unchanged spec is adopted as
is (an agent restart restarts nothing). Every phase change is reported as a
``DeploymentState`` with the revision of the desired entry it applies.

What it must never do: touch a container without its labels, block the loop, or loop
forever inside one message (retries are scheduled messages, with backoff).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

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
from fleet.runtime.failfast import SupervisedActor
from fleet.runtime.podman import (
    CONTAINER_LABEL,
    SPEC_HASH_LABEL,
    Container,
    ContainerFailed,
    ContainerRuntime,
    ImagePullFailed,
    container_name,
    owner_labels,
    spec_hash,
)
from fleet.runtime.timers import Cancellable, TimerPort

from .messages import Apply, Check, ReconcilerIdle, Remove

logger = logging.getLogger(__name__)


class _Retry(Exception):
    """Stop this pass; try again after ``delay`` (already reported)."""


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
    ) -> None:
        super().__init__()
        self._device = device_id
        self._deployment = deployment
        self._runtime = runtime
        self._report_fn = report
        self._timers = timers
        self._parent = parent
        self._stop_timeout = stop_timeout
        self._pull_timeout = pull_timeout
        self._max_backoff = max_backoff
        self._labels = owner_labels(device_id, deployment)
        self._score: PodmanScore | None = None
        self._error: str | None = None
        self._removing = False
        self._revision = 0
        self._reported: tuple[Phase, str | None, int] | None = None
        self._backoff = 0.0
        self._retry: Cancellable | None = None

    # -- messages ---------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Apply):
            self._score, self._error, self._removing = message.score, message.error, False
            self._revision = message.revision
            self._backoff = 0.0
            if self._reported is None:
                self._report(Phase.PENDING)
            self._converge()
        elif isinstance(message, Remove):
            self._score, self._error, self._removing = None, None, True
            self._revision = message.revision
            self._converge()
        elif isinstance(message, Check) and (self._score is not None or self._removing):
            self._converge()
        return None

    def on_stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()

    # -- converging ---------------------------------------------------------------------

    def _converge(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        try:
            if self._removing:
                self._remove_all()
            elif self._error is not None:
                self._report(Phase.FAILED, self._error)
            elif self._score is not None:
                self._apply(self._score)
                self._backoff = 0.0
        except _Retry:
            self._schedule_retry()
        except TemporaryError as exc:  # podman service away: say so, try again
            self._report(Phase.FAILED, f"podman is not reachable: {exc}")
            self._schedule_retry()
        except FleetError as exc:
            self._report(Phase.FAILED, str(exc))
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        self._backoff = min(self._max_backoff, max(1.0, self._backoff * 2))
        self._retry = self._timers.tell_later(
            self.actor_ref, Check(reason="retry"), delay=self._backoff
        )

    def _remove_all(self) -> None:
        owned = self._runtime.list_containers(labels=self._labels)
        if owned:
            self._report(Phase.STOPPING)
            for container in owned:
                self._runtime.stop(container.id, timeout=self._stop_timeout)
                self._runtime.remove(container.id)
        self._report(Phase.REMOVED)
        self._removing = False
        if self._parent is not None:
            self._parent.tell(ReconcilerIdle(deployment=self._deployment))

    def _apply(self, score: PodmanScore) -> None:
        owned = self._runtime.list_containers(labels=self._labels)
        wanted = {
            container_name(self._device, self._deployment, c.name): c for c in score.containers
        }
        by_name: dict[str, Container] = {}
        for container in owned:
            name = container.name.lstrip("/")
            if name not in wanted or name in by_name:
                self._runtime.remove(container.id)  # no longer in the score
            else:
                by_name[name] = container
        for name, spec in wanted.items():
            self._ensure(name, spec, by_name.get(name))
        self._report(Phase.RUNNING)

    def _ensure(self, name: str, spec: ContainerSpec, existing: Container | None) -> None:
        digest = spec_hash(spec)
        if existing is not None and existing.spec_hash != digest:
            self._report(Phase.STARTING)
            self._runtime.stop(existing.id, timeout=self._stop_timeout)
            self._runtime.remove(existing.id)
            existing = None
        if existing is None:
            self._pull(spec.image)
            self._report(Phase.STARTING)
            labels = {**self._labels, CONTAINER_LABEL: spec.name, SPEC_HASH_LABEL: digest}
            container_id = self._runtime.create(name=name, spec=spec, labels=labels)
            self._start(container_id, spec)
        elif not existing.running and _should_run(spec, existing):
            self._report(Phase.STARTING)
            self._start(existing.id, spec)

    def _start(self, container_id: str, spec: ContainerSpec) -> None:
        try:
            self._runtime.start(container_id)
        except ContainerFailed as exc:
            now = self._runtime.inspect(container_id)
            if now is not None and now.running:  # podman's own restart won the race
                return
            self._report(Phase.FAILED, f"container {spec.name!r} did not start: {exc}")
            raise _Retry from exc

    def _pull(self, image: str) -> None:
        if self._runtime.image_present(image):
            return
        if self._reported is None or self._reported[0] is not Phase.PULLING:
            self._report(Phase.PULLING, f"pulling {image}")  # retries keep their reason
        try:
            self._runtime.pull(image, timeout=self._pull_timeout)
        except ImagePullFailed as exc:
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

    # -- reporting ------------------------------------------------------------------------

    def _report(self, phase: Phase, message: str | None = None) -> None:
        if phase is not Phase.FAILED and phase is not Phase.PULLING:
            message = None
        key = (phase, message, self._revision)
        if key == self._reported:
            return
        self._reported = key
        logger.info(
            "%s/%s: %s (revision %d)%s",
            self._device,
            self._deployment,
            phase.value,
            self._revision,
            f": {message}" if message else "",
        )
        self._report_fn(
            DeploymentState(
                device_id=self._device,
                deployment=self._deployment,
                phase=phase,
                desired_revision=self._revision,
                message=message,
                updated_at=dt.datetime.now(dt.UTC),
            )
        )


def _should_run(spec: ContainerSpec, container: Container) -> bool:
    """Whether a stopped container must be started again (its restart policy)."""
    if spec.restart_policy == "always":
        return True
    if spec.restart_policy == "on-failure":
        return container.exit_code not in (0, None) or container.state in ("created", "stopped")
    return container.state == "created"
