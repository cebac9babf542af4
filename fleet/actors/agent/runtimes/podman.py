"""The podman runtime: a deployment's containers, behind the runtime port.

Why it exists: it is the ``"podman"`` implementation of :class:`~.port.WorkloadRuntime`,
the rules the reconciler used to hold itself, moved behind the port unchanged. It speaks
to podman only through :class:`~fleet.runtime.podman.port.ContainerRuntime` (the REST
adapter in ``fleet/runtime/podman``, or the simulated runtime of the demo and the unit
tests). A pass (:meth:`PodmanWorkload.ensure`) goes in this order, so that an update
never breaks what runs before the new thing can be made (docs/agent.md):

1. pull every image the new and changed containers need; a failed pull stops the pass
   with nothing touched; then make the named volumes they mount (:mod:`..volumes`),
   which outlive every container;
2. remove containers no longer in the score (and leftovers of an interrupted replace);
3. create the new containers; replace the changed ones (:mod:`..replacing`);
4. start containers that were created but never started; replace, with a fresh
   container, one that has run and stopped but should run (never ``start`` it again:
   see :data:`..health.RESTART_GRACE`);
5. look at every container's health (:mod:`..health`, :mod:`..crash_loops`), run the
   health checks that are due (:mod:`..probing`) and note how a container that stays
   ended ended: the :class:`~.port.Condition` its report carries.

Removing a deployment removes its containers, then the volumes marked to go with it.

Containers are the deployment's when they carry its owner labels
(:func:`~fleet.runtime.podman.port.owner_labels`), checked again here; each carries the
hash of its spec, so a changed spec is replaced and an unchanged one adopted as is.

What it must never do: touch a container without its labels, start a container that
has run before, or loop inside a pass (a retry is :class:`~.port.RetryLater`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from fleet.contracts import (
    ContainerSpec,
    DeploymentName,
    DeviceId,
    Phase,
    PodmanScore,
    ReconcileScore,
    SealedValue,
)
from fleet.contracts.pull_auth import canonical_registry, image_registry
from fleet.errors import PermanentError
from fleet.runtime.host.container_files import ContainerFiles, FilesFailed, Prepared
from fleet.runtime.host.host_paths import HostPathRefused, agent_home, resolve_host_path
from fleet.runtime.podman.port import (
    CONTAINER_LABEL,
    Container,
    ContainerEvent,
    ContainerFailed,
    ContainerRuntime,
    ImagePullFailed,
    RuntimeUnavailable,
    StorageRoots,
    is_owned,
    owner_labels,
)

from ..crash_loops import DEFAULT_RESTARTS, DEFAULT_WINDOW
from ..health import RESTART_GRACE, Health, should_run
from ..planning import plan_pass
from ..probing import HealthChecks
from ..replacing import Replacer
from ..secret_env import (
    DeploymentSecrets,
    OpenedEnv,
    SecretEnvFailed,
    open_secret_env,
    secret_deployments,
)
from ..tally import AgentTally
from ..volumes import DeploymentVolumes
from .port import (
    Condition,
    DriftEvent,
    EventStream,
    Observed,
    Progress,
    RetryLater,
    Unit,
)
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
        files: ContainerFiles | None = None,
    ) -> None:
        self.runtime = runtime
        self._files = files
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
            clock=self._clock, tally=self._tally, files=self._files,
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
        for deployment in secret_deployments(self.runtime, self._device):  # only its secrets
            deployments.setdefault(deployment, 0)
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
        files: ContainerFiles | None = None,
    ) -> None:
        self._runtime = runtime
        self._files = files
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
        self._volumes = DeploymentVolumes(runtime, device_id, deployment)
        self._secrets = DeploymentSecrets(runtime, device_id, deployment)
        self._secrets_swept = False  # a first pass sweeps what a crash may have left
        self._bound: dict[str, str] = {}  # this pass: each host path -> the real path bound
        self._checks = HealthChecks(runtime, clock)
        self._condition = Condition()

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
        self._volumes.remove_with_deployment()  # after every container that used them
        self._secrets.forget()  # so do its secrets
        if self._files is not None:
            self._files.forget(deployment=str(self._deployment), keep={})
        return bool(owned)

    def ensure(
        self, score: ReconcileScore, *, revision: int, observed: Observed, progress: Progress
    ) -> str | None:
        """One pass (see the module doc); returns what is unhealthy, or None."""
        if not isinstance(score, PodmanScore):  # the registry routes by type: a bug
            raise PermanentError(f"the podman runtime was given a {type(score).__name__}")
        self._bound = self._resolve_host_paths(score, progress)  # 0. looked at on the device
        prepared = self._prepare_files(score, progress)  # 0b. opened and written whole
        env = self._open_secret_env(score, progress)  # 0c. opened, in memory
        digests = {name: p.digest for name, p in prepared.items()}
        env_digests = {name: e.digest for name, e in env.items()}
        plan = plan_pass(self._device, self._deployment, score, self._owned(observed), digests,
                         secret_env=env_digests)  # fmt: skip
        wanted, current, strays, changed = plan
        for image in dict.fromkeys(wanted[name].image for name in changed):
            auth = self._pull_auth(score, image, progress)
            self._pull(image, progress, auth)  # 1. make-before-break: every image first
        try:  # 1b. the volumes they mount and their secrets, before any container is touched
            self._volumes.ensure(wanted[name] for name in changed)
            self._secrets.ensure(env)
        except ContainerFailed as exc:
            progress.report(Phase.FAILED, str(exc))
            raise RetryLater from exc
        if strays or changed:
            progress.touched()
        for container in strays:  # 2.
            if container.running:
                progress.breaking()
            self._replacer.remove(container.id)
        ids: dict[str, str] = {}
        for name in changed:  # 3.
            spec = wanted[name]
            ids[name] = self._make(name, spec, current.get(name), revision=revision,
                                   prepared=prepared.get(spec.name), progress=progress,
                                   env=env.get(spec.name))  # fmt: skip
        for name, spec in wanted.items():  # 4.
            if name not in changed:
                ids[name] = self._keep_running(
                    name, spec, current[name], revision=revision, progress=progress,
                    prepared=prepared.get(spec.name), env=env.get(spec.name),
                )  # fmt: skip
        if self._files is not None:  # every container made: older contents can go
            self._files.forget(deployment=str(self._deployment), keep=digests)
        if strays or changed or not self._secrets_swept:  # and older secrets
            self._secrets.forget(
                keep={s for c, e in env.items() for s in self._secrets.names(c, e).values()}
            )
            self._secrets_swept = True
        unhealthy = self._health.check({name: (wanted[name], cid) for name, cid in ids.items()})
        self._observe_condition(wanted, ids, progress)  # 5. and what the report adds
        return unhealthy

    def _make(
        self,
        name: str,
        spec: ContainerSpec,
        old: Container | None,
        *,
        revision: int,
        prepared: Prepared | None,
        progress: Progress,
        env: OpenedEnv | None = None,
    ) -> str:
        """Step 3 for one container: create it, or replace ``old``; returns its id."""
        progress.report(Phase.STARTING)
        labels = self._container_labels(spec, revision, prepared, env)
        mounts = _mounts(prepared)
        secret_env = self._secrets.names(spec.name, env) if env is not None else None
        try:
            if old is None:
                return self._replacer.create(name=name, spec=self._bound_spec(spec), labels=labels,
                                             mounts=mounts, secret_env=secret_env)  # fmt: skip
            return self._replacer.replace(
                name=name, spec=self._bound_spec(spec), labels=labels, old=old,
                on_break=progress.breaking, mounts=mounts, secret_env=secret_env,
            )  # fmt: skip
        except ContainerFailed as exc:
            _start_failed(progress, spec, exc)

    def condition(self) -> Condition:
        return self._condition

    def _observe_condition(
        self, wanted: dict[str, ContainerSpec], ids: dict[str, str], progress: Progress
    ) -> None:
        running = self._health.running
        health, due = self._checks.check(
            {name: (wanted[name], cid, cid in running) for name, cid in ids.items()}
        )
        if due is not None:
            progress.check_later(due, reason="health")
        ended = self._health.ended
        exit_code = next((c for c in ended.values() if c != 0), 0) if ended else None
        self._condition = Condition(health=health, exit_code=exit_code)

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
        *,
        revision: int,
        progress: Progress,
        prepared: Prepared | None = None,
        env: OpenedEnv | None = None,
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
        labels = self._container_labels(spec, revision, prepared, env)
        progress.breaking()
        progress.touched()
        try:
            return self._replacer.renew(
                name=name,
                spec=self._bound_spec(spec),
                labels=labels,
                old=container,
                mounts=_mounts(prepared),
                secret_env=self._secrets.names(spec.name, env) if env is not None else None,
            )
        except ContainerFailed as exc:
            _start_failed(progress, spec, exc)

    def _container_labels(
        self, spec: ContainerSpec, revision: int, prepared: Prepared | None, env: OpenedEnv | None
    ) -> dict[str, str]:
        return self._replacer.labels(
            self._labels, spec, revision, prepared.digest if prepared is not None else None,
            secret_env=env.digest if env is not None else None,
        )  # fmt: skip

    def _open_secret_env(self, score: PodmanScore, progress: Progress) -> dict[str, OpenedEnv]:
        """Each container's ``secret_env``, opened in memory (by the score's container
        name); one that cannot be: ``Failed`` naming the field, nothing of the score
        touched. The values are never logged nor reported."""
        opened: dict[str, OpenedEnv] = {}
        for index, spec in enumerate(score.containers):
            if not spec.secret_env:
                continue
            field = f"containers[{index}].secret_env"
            if self._files is None:
                progress.report(Phase.FAILED, f"{field}: this agent has no device key")
                raise RetryLater
            try:
                opened[spec.name] = open_secret_env(spec, field=field, opener=self._open_sealed)
            except SecretEnvFailed as exc:
                progress.report(Phase.FAILED, f"{exc}: nothing of it runs")
                raise RetryLater from exc
        return opened

    def _resolve_host_paths(self, score: PodmanScore, progress: Progress) -> dict[str, str]:
        """Every host path the score mounts, resolved on the device and checked again
        (:mod:`fleet.runtime.host.host_paths`): host path -> the real path podman binds.
        One refused: ``Failed`` naming it, nothing of the score touched."""
        paths = [(f"containers[{index}].volumes[{v_index}].host_path", volume.host_path)
                 for index, spec in enumerate(score.containers)
                 for v_index, volume in enumerate(spec.volumes or ())
                 if volume.host_path is not None]  # fmt: skip
        if not paths:
            return {}
        protected: list[Path | str] = [] if self._files is None else [self._files.state_dir]
        home = agent_home()
        protected += [home] if home is not None else []
        if isinstance(self._runtime, StorageRoots):
            try:
                protected += self._runtime.storage_roots()
            except RuntimeUnavailable as exc:
                progress.report(Phase.FAILED, f"{paths[0][0]}: cannot tell where podman keeps "
                                f"its storage ({exc}): nothing of it runs")  # fmt: skip
                raise RetryLater from exc
        bound: dict[str, str] = {}
        for field, path in paths:
            try:
                bound[path] = resolve_host_path(path, protected=protected)
            except HostPathRefused as exc:
                progress.report(Phase.FAILED, f"{field}: {exc}: nothing of it runs")
                raise RetryLater from exc
        return bound

    def _bound_spec(self, spec: ContainerSpec) -> ContainerSpec:
        """``spec`` as podman gets it: each host path the real one resolved this pass (a
        symlink swapped in since does not move the mount). Its hash stays the score's."""
        if not any(v.host_path is not None for v in spec.volumes or ()):
            return spec
        volumes = [v if v.host_path is None else msgspec.structs.replace(
                       v, host_path=self._bound[v.host_path])
                   for v in spec.volumes or ()]  # fmt: skip
        return msgspec.structs.replace(spec, volumes=volumes)

    def _open_sealed(self, value: SealedValue, where: str) -> bytes:
        assert self._files is not None  # checked by the caller
        try:
            return self._files.open_sealed(value, field=where)
        except FilesFailed as exc:
            raise SecretEnvFailed(str(exc)) from None

    def _prepare_files(self, score: PodmanScore, progress: Progress) -> dict[str, Prepared]:
        """Each container's files, opened and written (by the score's container name);
        one that cannot be: ``Failed`` naming the field, nothing of the score touched."""
        prepared: dict[str, Prepared] = {}
        for index, spec in enumerate(score.containers):
            if not spec.files:
                continue
            field = f"containers[{index}].files"
            if self._files is None:
                progress.report(Phase.FAILED, f"{field}: this agent has no place to write files")
                raise RetryLater
            try:
                prepared[spec.name] = self._files.prepare(
                    deployment=str(self._deployment), container=spec.name,
                    files=spec.files, field=field,
                )  # fmt: skip
                self._files.owner(prepared[spec.name], uid=_uid(spec.user))
            except FilesFailed as exc:
                progress.report(Phase.FAILED, f"{exc}: nothing of it runs")
                raise RetryLater from exc
            except OSError as exc:
                progress.report(Phase.FAILED, f"{field}: writing them failed: {exc.strerror}")
                raise RetryLater from exc
        return prepared

    def _pull_auth(
        self, score: PodmanScore, image: str, progress: Progress
    ) -> dict[str, str] | None:
        """The credential of ``image``'s registry (``registry_auth``), opened; None if
        the score has none for it. One that does not open: ``Failed`` naming it."""
        registry = image_registry(image)
        for index, auth in enumerate(score.registry_auth or ()):
            if canonical_registry(auth.registry) != registry:
                continue
            field = f"registry_auth[{index}].sealed"
            if self._files is None:
                progress.report(Phase.FAILED, f"{field}: this agent has no device key")
                raise RetryLater
            try:
                plain = self._files.open_sealed(auth.sealed, field=field)
                credential = msgspec.json.decode(plain, type=dict[str, str])
                return {"username": credential["username"], "password": credential["password"]}
            except FilesFailed as exc:
                progress.report(Phase.FAILED, f"{exc}: nothing of it runs")
                raise RetryLater from exc
            except (msgspec.DecodeError, KeyError) as exc:
                progress.report(Phase.FAILED, f"{field}: not a username and password")
                raise RetryLater from exc
        return None

    def _pull(self, image: str, progress: Progress, auth: dict[str, str] | None = None) -> None:
        if self._runtime.image_present(image):
            return
        if progress.phase is not Phase.PULLING:
            progress.report(Phase.PULLING, f"pulling {image}")  # retries keep their reason
        started = self._clock()
        try:
            self._runtime.pull(image, timeout=self._pull_timeout, auth=auth)
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


def _mounts(prepared: Prepared | None) -> tuple[tuple[str, str], ...]:
    return tuple((m.source, m.target) for m in prepared.mounts) if prepared else ()


def _uid(user: str | None) -> int | None:
    """The container's numeric uid (``"1000"``, ``"1000:1000"``), or None (a name: the
    files stay root's)."""
    uid = (user or "").split(":", 1)[0]
    if not uid.isdigit() or len(uid) > 10 or int(uid) > 2**32 - 2:
        return None  # a name, or no uid chown(2) takes (the contract refuses those)
    return int(uid)


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
