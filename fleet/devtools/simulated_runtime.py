"""A container runtime that runs nothing: containers and images kept in memory.

Why it exists: where podman cannot run (no podman, no permissions, a sandbox that refuses
it), the local demo still runs real ``fleet-agent`` logic, real NATS and the real
operator by giving each agent this runtime behind the same
:class:`~fleet.runtime.podman.port.ContainerRuntime` Protocol as the podman adapter. Unit tests
use it too, with its switches (registry down, podman away, a taken host port).

What it must never do: pretend to serve anything (no process runs, no port is opened),
or be wired into the shipped ``fleet-agent``: it is a development stand-in.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import msgspec

from fleet.contracts import ContainerSpec
from fleet.runtime.podman.port import (
    Container,
    ContainerEvent,
    ContainerFailed,
    EventStream,
    ImagePullFailed,
    RuntimeUnavailable,
)


class _NoEvents:
    def close(self) -> None:
        return None


class SimulatedRuntime:
    """Containers and images in dicts; failures switched on by the caller.

    ``registry``: the images a pull finds; ``None`` means every image exists.
    """

    def __init__(
        self, *, registry: set[str] | None = None, version: tuple[str, str] = ("simulated", "0")
    ) -> None:
        self.containers: dict[str, Container] = {}
        self.specs: dict[str, ContainerSpec] = {}
        self.mounts: dict[str, tuple[tuple[str, str], ...]] = {}
        self.secret_env: dict[str, dict[str, str]] = {}  # container id -> variable: secret
        self.secrets: dict[str, dict[str, str]] = {}  # secret name -> labels (no values kept)
        self.images: set[str] = set()
        self.registry = registry
        self.registry_up = True
        self.available = True
        self.taken_ports: set[int] = set()
        self.output: dict[str, list[str]] = {}  # container id -> its log lines
        self.calls: list[str] = []
        self._version = version
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _check(self, call: str) -> None:
        self.calls.append(call)
        if not self.available:
            raise RuntimeUnavailable("podman socket gone")

    def version(self) -> tuple[str, str]:
        self._check("version")
        return self._version

    def list_containers(self, *, labels: Mapping[str, str]) -> list[Container]:
        self._check("list")
        with self._lock:
            return [
                c
                for c in self.containers.values()
                if all(c.labels.get(k) == v for k, v in labels.items())
            ]

    def image_present(self, image: str) -> bool:
        self._check("image_present")
        return image in self.images

    def pull(self, image: str, *, timeout: float, auth: Mapping[str, str] | None = None) -> None:
        self._check(f"pull {image}")
        if not self.registry_up:
            raise ImagePullFailed(f"pulling {image}: connection refused")
        if self.registry is not None and image not in self.registry:
            raise ImagePullFailed(f"pulling {image}: manifest unknown", not_found=True)
        self.images.add(image)

    def create(
        self,
        *,
        name: str,
        spec: ContainerSpec,
        labels: Mapping[str, str],
        mounts: Sequence[tuple[str, str]] = (),
        secret_env: Mapping[str, str] | None = None,
    ) -> str:
        self._check(f"create {name}")
        with self._lock:
            if any(c.name == name for c in self.containers.values()):
                raise ContainerFailed(f"name {name} in use")
            cid = f"c{next(self._ids)}"
            self.containers[cid] = Container(
                id=cid, name=name, labels=dict(labels), state="created"
            )
            self.specs[cid] = spec
            self.mounts[cid] = tuple(mounts)
            self.secret_env[cid] = dict(secret_env or {})
            return cid

    def ensure_secret(self, name: str, *, data: bytes, labels: Mapping[str, str]) -> None:
        self._check(f"ensure_secret {name}")
        with self._lock:
            found = self.secrets.setdefault(name, dict(labels))
        if found != dict(labels):
            raise ContainerFailed(f"secret {name} exists but is not this deployment's")

    def list_secrets(self, *, prefix: str) -> list[tuple[str, dict[str, str]]]:
        self._check("list_secrets")
        with self._lock:
            return [(n, dict(lb)) for n, lb in self.secrets.items() if n.startswith(prefix)]

    def remove_secret(self, name: str) -> None:
        self._check(f"remove_secret {name}")
        with self._lock:
            self.secrets.pop(name, None)

    def start(self, container_id: str) -> None:
        self._check(f"start {container_id}")
        spec = self.specs[container_id]
        if any(p.host_port in self.taken_ports for p in spec.ports or ()):
            raise ContainerFailed("cannot listen on the TCP port: address already in use")
        self._set(container_id, "running", None)

    def stop(self, container_id: str, *, timeout: float) -> None:
        self._check(f"stop {container_id}")
        if container_id in self.containers:
            self._set(container_id, "exited", 0, exited_at=time.time())

    def remove(self, container_id: str) -> None:
        self._check(f"remove {container_id}")
        with self._lock:
            self.containers.pop(container_id, None)

    def rename(self, container_id: str, name: str) -> None:
        self._check(f"rename {container_id} {name}")
        with self._lock:
            if any(c.name == name for c in self.containers.values()):
                raise ContainerFailed(f"name {name} in use")
            old = self.containers[container_id]
            self.containers[container_id] = msgspec.structs.replace(old, name=name)

    def inspect(self, container_id: str) -> Container | None:
        self._check("inspect")
        return self.containers.get(container_id)

    def logs(self, container_id: str, *, tail: int) -> list[str]:
        self._check(f"logs {container_id}")
        return self.output.get(container_id, [])[-tail:] if tail > 0 else []

    def events(
        self,
        *,
        labels: Mapping[str, str],
        on_event: Callable[[ContainerEvent], None],
        on_error: Callable[[BaseException], None],
    ) -> EventStream:
        return _NoEvents()

    def exit(self, container_id: str, code: int, *, at: float | None = None) -> None:
        """The process in the container ended by itself (``at``: when, unix time)."""
        self._set(container_id, "exited", code, exited_at=time.time() if at is None else at)

    def restarted(self, container_id: str, *, code: int) -> None:
        """Podman's restart policy ran it again after it exited with ``code``."""
        with self._lock:
            old = self.containers[container_id]
            self.containers[container_id] = msgspec.structs.replace(
                old,
                state="running",
                exit_code=code,
                restart_count=old.restart_count + 1,
                exited_at=time.time(),
            )

    def close(self) -> None:
        return None

    def _set(
        self,
        container_id: str,
        state: str,
        exit_code: int | None,
        *,
        exited_at: float | None = None,
    ) -> None:
        with self._lock:
            old = self.containers[container_id]
            self.containers[container_id] = msgspec.structs.replace(
                old, state=state, exit_code=exit_code, exited_at=exited_at or old.exited_at
            )
