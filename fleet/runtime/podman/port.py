"""The container runtime port: what a device's reconcilers may ask of podman.

Why it exists: reconciler actors drive containers through this small Protocol and
nothing else, so they can be unit-tested with an in-memory fake and run against the
real podman socket (:mod:`fleet.runtime.podman.adapter`) unchanged.

Every method blocks (podman-py is synchronous): call them from an actor's own thread,
never from the event loop. Errors are fleet's: :class:`RuntimeUnavailable` (the podman
service is away: retry), :class:`ImagePullFailed` (temporary unless ``not_found``),
:class:`ContainerFailed` (podman refused to create, start or rename the container: the
message says why, e.g. the host port is taken), :class:`NotAddressable` (a value no
REST path can carry).

The agent's containers carry its labels (:func:`owner_labels`, the container's name in
the score, its spec hash and the revision it was made for); a replacement is created
under :func:`temporary_name` first.

This module must never import a podman client: it is the port, not the adapter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Literal, Protocol, runtime_checkable

import msgspec

from fleet.contracts import ContainerSpec
from fleet.errors import PermanentError, TemporaryError

LABEL_PREFIX: Final = "fleet.nationtech.io/"
MANAGED_BY_LABEL: Final = LABEL_PREFIX + "managed-by"
MANAGED_BY: Final = "fleet-agent"
DEVICE_LABEL: Final = LABEL_PREFIX + "device"
DEPLOYMENT_LABEL: Final = LABEL_PREFIX + "deployment"
CONTAINER_LABEL: Final = LABEL_PREFIX + "container"
SPEC_HASH_LABEL: Final = LABEL_PREFIX + "spec-hash"
REVISION_LABEL: Final = LABEL_PREFIX + "revision"
"""The desired-state revision a container was created for (what runs, after a restart)."""
VOLUME_LABEL: Final = LABEL_PREFIX + "volume"
"""On a volume the agent made: the volume's name in the score."""
REMOVE_WITH_DEPLOYMENT_LABEL: Final = LABEL_PREFIX + "remove-with-deployment"
"""On a volume the agent made: ``"true"`` when it goes when its deployment does."""
TEMPORARY_SUFFIX: Final = ".next"
"""A replacement is created as ``<name>.next`` while the old container still runs. A '.'
is in no device id, deployment or container name, so it never clashes with a real name."""

ContainerState = Literal[
    "created", "running", "paused", "exited", "stopped", "stopping", "configured", "unknown"
]


class RuntimeUnavailable(TemporaryError):
    """The podman service cannot be reached (socket missing, service restarting)."""


class ImagePullFailed(TemporaryError):
    """An image could not be pulled. ``not_found``: the registry says it does not exist."""

    def __init__(self, message: str, *, not_found: bool = False, delay: float = 1.0) -> None:
        super().__init__(message, delay=delay)
        self.not_found = not_found


class ContainerFailed(PermanentError):
    """Podman refused to create or start a container; the message says why."""


class NotAddressable(PermanentError):
    """A name or image reference that cannot be put in a REST path as one segment
    (empty, ``.`` or ``..``); the contracts never let one through."""


class Container(msgspec.Struct, frozen=True, kw_only=True):
    """A container as the runtime reports it."""

    id: str
    name: str
    labels: dict[str, str]
    state: str
    exit_code: int | None = None
    started_at: str = ""
    restart_count: int = 0  # podman's own restarts (restart policy); from inspect only
    exited_at: float | None = None  # when its process last ended (unix time); None: never

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def deployment(self) -> str | None:
        return self.labels.get(DEPLOYMENT_LABEL)

    @property
    def spec_hash(self) -> str | None:
        return self.labels.get(SPEC_HASH_LABEL)

    @property
    def revision(self) -> int | None:
        value = self.labels.get(REVISION_LABEL, "")
        return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


class ContainerEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Something happened to an owned container (``action``: died, remove, stop...)."""

    container_id: str
    name: str
    action: str
    labels: dict[str, str]
    exit_code: int | None = None  # for ``died``: the process's exit code

    @property
    def deployment(self) -> str | None:
        return self.labels.get(DEPLOYMENT_LABEL)

    @property
    def container(self) -> str | None:
        """The container's name in the score."""
        return self.labels.get(CONTAINER_LABEL)


class EventStream(Protocol):
    def close(self) -> None:
        """Stop the stream; no callback runs after this returns."""


class ContainerRuntime(Protocol):
    """What the agent needs from a container engine."""

    def version(self) -> tuple[str, str]:
        """(runtime name, version), e.g. ("podman", "4.3.1")."""
        ...

    def list_containers(self, *, labels: Mapping[str, str]) -> list[Container]:
        """Every container (running or not) carrying all of ``labels``."""
        ...

    def image_present(self, image: str) -> bool: ...

    def pull(self, image: str, *, timeout: float, auth: Mapping[str, str] | None = None) -> None:
        """Pull ``image``; raise :class:`ImagePullFailed`. ``auth``: the registry's
        ``username`` and ``password``, for this pull only (never stored)."""
        ...

    def create(
        self,
        *,
        name: str,
        spec: ContainerSpec,
        labels: Mapping[str, str],
        mounts: Sequence[tuple[str, str]] = (),
        secret_env: Mapping[str, str] | None = None,
    ) -> str:
        """Create (not start) a container; return its id. Raise :class:`ContainerFailed`.
        ``mounts``: (file on the device, path in the container), bound read-only;
        ``secret_env``: env variable -> the podman secret (:class:`SecretStore`) it holds."""
        ...

    def start(self, container_id: str) -> None:
        """Start it; raise :class:`ContainerFailed` (port taken, bad command)."""
        ...

    def stop(self, container_id: str, *, timeout: float) -> None:
        """Stop it (SIGTERM, then SIGKILL after ``timeout`` s); absent is not an error."""
        ...

    def remove(self, container_id: str) -> None:
        """Remove it, stopping it if needed; absent is not an error."""
        ...

    def rename(self, container_id: str, name: str) -> None:
        """Give the container a new name; raise :class:`ContainerFailed` (name taken)."""
        ...

    def inspect(self, container_id: str) -> Container | None:
        """The container with its ``restart_count``; ``None`` if it does not exist."""
        ...

    def logs(self, container_id: str, *, tail: int) -> list[str]:
        """Its last ``tail`` lines of output (stdout and stderr, in order); [] if absent."""
        ...

    def events(
        self,
        *,
        labels: Mapping[str, str],
        on_event: Callable[[ContainerEvent], None],
        on_error: Callable[[BaseException], None],
    ) -> EventStream:
        """Stream container events of containers carrying ``labels`` (own thread).

        ``on_error`` is called once if the stream breaks (the service went away); the
        caller decides when to open a new one.
        """
        ...


class LogFollower(Protocol):
    """One read of a container's output on a thread of its own (see
    :mod:`fleet.runtime.podman.log_stream`): drained by the caller, bounded."""

    error: str | None
    """Why the read stopped early (the container is gone, podman away), else None."""

    @property
    def ended(self) -> bool:
        """Nothing more will come (what is buffered stays until drained)."""
        ...

    def wait_ended(self, timeout: float) -> bool: ...

    def drain(self) -> tuple[list[str], int]:
        """The lines since the last drain, and how many were dropped before them."""
        ...

    def close(self) -> None:
        """Stop reading now; never raises."""
        ...


@runtime_checkable
class LogSource(Protocol):
    """Containers' output on demand (``fleetctl logs``): the podman adapter has it; a
    runtime without it answers that it keeps no logs."""

    def open_logs(
        self, container_id: str, *, tail: int, follow: bool, max_lines: int
    ) -> LogFollower:
        """Start reading the last ``tail`` lines (and with ``follow`` what comes next),
        keeping at most ``max_lines`` undrained; raise :class:`NotAddressable`."""
        ...


@runtime_checkable
class VolumeStore(Protocol):
    """Named volumes (the podman adapter has them; a runtime without them refuses a
    score that mounts one)."""

    def ensure_volume(self, name: str, *, labels: Mapping[str, str]) -> None:
        """Create volume ``name`` with ``labels`` unless it exists (then keep it as it
        is: its data and labels); raise :class:`ContainerFailed`."""
        ...

    def list_volumes(self, *, labels: Mapping[str, str]) -> list[tuple[str, dict[str, str]]]:
        """``(name, labels)`` of every volume carrying all of ``labels``."""
        ...

    def remove_volume(self, name: str) -> None:
        """Remove it (no container uses it any more); absent is not an error."""
        ...


@runtime_checkable
class HealthProbe(Protocol):
    """Runs a container's health check on demand (the podman adapter can; the agent
    schedules the checks itself: :mod:`fleet.runtime.podman.specgen`)."""

    def health(self, container_id: str, *, timeout: float) -> str | None:
        """Run the check now (it may take ``timeout`` s); the container's health after
        it (``healthy``, ``unhealthy``, ``starting``), or None when it has no check or is
        gone."""
        ...


@runtime_checkable
class SecretStore(Protocol):
    """Podman secrets, for ``secret_env`` (the podman adapter has them; a runtime without
    them refuses a score that sets one)."""

    def ensure_secret(self, name: str, *, data: bytes, labels: Mapping[str, str]) -> None:
        """Create secret ``name`` holding ``data`` with ``labels`` unless it exists with
        these labels (its name says what it holds); raise :class:`ContainerFailed` if it
        exists with others (not the agent's)."""
        ...

    def list_secrets(self, *, prefix: str) -> list[tuple[str, dict[str, str]]]:
        """``(name, labels)`` of every secret whose name starts with ``prefix``."""
        ...

    def remove_secret(self, name: str) -> None:
        """Remove it (no container uses it any more); absent is not an error."""
        ...


@runtime_checkable
class StorageRoots(Protocol):
    """Where podman keeps its storage (images, containers, volumes, secrets): a host path
    under one must never be bind-mounted (:mod:`fleet.runtime.host.host_paths`)."""

    def storage_roots(self) -> list[str]:
        """Podman's graph root, run root and volume path; raise :class:`RuntimeUnavailable`
        if podman cannot say."""
        ...


def volume_name(device_id: str, deployment: str, volume: str) -> str:
    """The podman volume behind a score's volume ``volume``: one per deployment.

    ``fleet-<device>-<deployment>-<volume>`` when neither the deployment nor the volume
    has a ``-`` (the name every earlier agent used, so those volumes are adopted; the
    last two ``-``-separated parts are then unambiguous), else
    ``fleet-<device>.<deployment>.<volume>``: no device id, deployment or volume name may
    contain a ``.``, so ``web`` + ``data-x`` and ``web-data`` + ``x`` never share one.
    """
    if "-" not in deployment and "-" not in volume:
        return f"fleet-{device_id}-{deployment}-{volume}"
    return f"fleet-{device_id}.{deployment}.{volume}"


def owner_labels(device_id: str, deployment: str | None = None) -> dict[str, str]:
    """The labels that mark a container as the agent's (for ``device_id``, ``deployment``)."""
    labels = {MANAGED_BY_LABEL: MANAGED_BY, DEVICE_LABEL: device_id}
    if deployment is not None:
        labels[DEPLOYMENT_LABEL] = deployment
    return labels


def is_owned(container: Container, device_id: str) -> bool:
    """Whether ``container`` carries this device's owner labels (checked again here,
    whatever filter the runtime applied: a container of another device, or one without
    the agent's labels, is never touched)."""
    return all(container.labels.get(k) == v for k, v in owner_labels(device_id).items())


def container_name(device_id: str, deployment: str, container: str) -> str:
    """Unique per device, so several agents can share one podman."""
    return f"fleet-{device_id}-{deployment}-{container}"


def temporary_name(name: str) -> str:
    """The name a replacement for container ``name`` is created under (see
    :data:`TEMPORARY_SUFFIX`); it is renamed to ``name`` once the old one is gone."""
    return name + TEMPORARY_SUFFIX


def spec_hash(spec: ContainerSpec, files: str | None = None, secret_env: str | None = None) -> str:
    """A stable hash of one container's spec (keys sorted, defaults omitted). A spec with
    ``files`` (or ``secret_env``) is hashed with the digest of their contents (``files``,
    from :mod:`fleet.runtime.host.container_files`; ``secret_env``, from
    :func:`secret_env_digest`) in place of how they travelled, so a value sealed again is
    no change and a changed content is one."""
    if not spec.files and not spec.secret_env:
        return hashlib.sha256(msgspec.json.encode(spec, order="sorted")).hexdigest()[:16]
    bare = msgspec.json.encode(
        msgspec.structs.replace(spec, files=None, secret_env=None), order="sorted"
    )
    tail = b"\0files:" + (files or "").encode() if spec.files else b""
    if spec.secret_env:
        tail += b"\0secret_env:" + (secret_env or "").encode()
    return hashlib.sha256(bare + tail).hexdigest()[:16]


def secret_env_digest(values: Mapping[str, bytes]) -> str:
    """What a container's ``secret_env`` is: each name and its value's hash (not the
    envelope: a value sealed twice is the same variable)."""
    digest = hashlib.sha256()
    for name in sorted(values):
        digest.update(name.encode() + b"\0" + hashlib.sha256(values[name]).digest())
    return digest.hexdigest()[:16]


def secret_name(device_id: str, deployment: str, container: str, *, index: int, digest: str) -> str:
    """The podman secret holding variable ``index`` (in name order) of a container's
    ``secret_env`` whose digest is ``digest``: ``fleet-<device>.<deployment>.<container>.
    <index>-<digest>``. No device id, deployment or container name holds a '.', so
    :func:`secret_prefix` of one deployment never matches another's."""
    return f"{secret_prefix(device_id, deployment)}{container}.{index}-{digest}"


def secret_prefix(device_id: str, deployment: str) -> str:
    """What the names of a deployment's podman secrets start with."""
    return f"fleet-{device_id}.{deployment}."


def port_args(spec: ContainerSpec) -> Sequence[tuple[int, int, str]]:
    """(host_port, container_port, protocol) per published port."""
    return [(p.host_port, p.container_port, p.protocol) for p in spec.ports or ()]
