"""A deployment's environment variables from Secrets: opened, kept as podman secrets.

Why it exists: a container's ``secret_env`` (docs/workloads.md "Environment variables
from a Secret") arrives sealed to this device's key. The agent opens each value in
memory and hands it to podman as a podman secret, which the container gets as an env
variable (specgen ``secret_env``), so the value is not in the container's create body
(and podman 5.3 and later mask it in ``podman inspect``; podman 4 still shows it there).

Each variable is one secret, named after its container and the digest of the
container's variables' *plaintexts* (:func:`~fleet.runtime.podman.port.secret_name`):
sealing the same values again gives the same names and the same spec hash, so nothing is
replaced; a changed value gives new names and replaces only that container. A secret
carries the owner labels, is made before the container that uses it and removed only
after every container of the deployment was made from the score (podman refuses to
restart a container whose secret is gone), or with the deployment. A crash anywhere
leaves at most a secret no container uses; the next complete pass (or the deletion)
removes it.

What it must never do: log or put in an error a value; remove a secret without this
device's and deployment's labels, or one a container of the score still uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import msgspec

from fleet.contracts import ContainerSpec, DeploymentName, DeviceId, SealedValue
from fleet.runtime.podman.port import (
    CONTAINER_LABEL,
    DEPLOYMENT_LABEL,
    ContainerFailed,
    ContainerRuntime,
    SecretStore,
    owner_labels,
    secret_env_digest,
    secret_name,
    secret_prefix,
)


class SecretEnvFailed(Exception):
    """A variable that cannot be given to its container; the message names the field."""


class OpenedEnv(msgspec.Struct, frozen=True, kw_only=True):
    """One container's variables, opened (kept in memory for one pass only)."""

    digest: str
    values: dict[str, bytes]  # variable -> value; never logged, never shown

    def __repr__(self) -> str:  # never the values
        return f"OpenedEnv(digest={self.digest!r}, variables={sorted(self.values)!r})"


Opener = Callable[[SealedValue, str], bytes]
"""Opens a sealed value for the field it names (raises with a message naming it)."""


def open_secret_env(spec: ContainerSpec, *, field: str, opener: Opener) -> OpenedEnv:
    """``spec``'s ``secret_env`` opened; :class:`SecretEnvFailed` naming the field."""
    values: dict[str, bytes] = {}
    for name, source in sorted((spec.secret_env or {}).items()):
        where = f"{field}.{name}"
        if source.sealed is None:
            raise SecretEnvFailed(
                f"{where}.{source.reference} is a reference the operator resolves; the "
                "desired state must carry the value sealed"
            )
        value = opener(source.sealed, f"{where}.sealed")
        if b"\0" in value:
            raise SecretEnvFailed(
                f"{where}.sealed: the value holds a NUL byte, which an environment variable cannot"
            )
        values[name] = value
    return OpenedEnv(digest=secret_env_digest(values), values=values)


def secret_deployments(runtime: ContainerRuntime, device: DeviceId) -> set[str]:
    """The deployments this device holds podman secrets of (with its owner labels): a
    deletion an agent was killed in the middle of, after the containers went but before
    their secrets did, leaves only those, and the orphan sweep must still find it."""
    if not isinstance(runtime, SecretStore):
        return set()
    owner = owner_labels(device)
    found: set[str] = set()
    for name, labels in runtime.list_secrets(prefix=f"fleet-{device}."):
        deployment = labels.get(DEPLOYMENT_LABEL, "")
        ours = all(labels.get(k) == v for k, v in owner.items())
        if ours and deployment and name.startswith(secret_prefix(device, deployment)):
            found.add(deployment)
    return found


class DeploymentSecrets:
    """The podman secrets of one deployment on one device."""

    def __init__(
        self, runtime: ContainerRuntime, device: DeviceId, deployment: DeploymentName
    ) -> None:
        self._store = runtime if isinstance(runtime, SecretStore) else None
        self._device, self._deployment = device, deployment
        self._labels = owner_labels(device, deployment)

    def names(self, container: str, opened: OpenedEnv) -> dict[str, str]:
        """Variable -> the podman secret that holds it."""
        return {
            name: secret_name(
                self._device, self._deployment, container, index=index, digest=opened.digest
            )
            for index, name in enumerate(sorted(opened.values))
        }

    def ensure(self, opened: Mapping[str, OpenedEnv]) -> None:
        """Make each container's secrets (by the score's container name) that do not
        exist yet; :class:`ContainerFailed` says why not (never quoting a value)."""
        for container, env in opened.items():
            if self._store is None:
                raise ContainerFailed(
                    f"container {container!r} sets secret_env, and this device's container "
                    "runtime has no secrets"
                )
            labels = {**self._labels, CONTAINER_LABEL: container}
            for name, secret in self.names(container, env).items():
                self._store.ensure_secret(secret, data=env.values[name], labels=labels)

    def forget(self, keep: Iterable[str] = ()) -> None:
        """Remove the deployment's secrets but ``keep`` (names): every container of the
        score was made, so no container uses the others."""
        if self._store is None:
            return
        kept = set(keep)
        for name, labels in self._store.list_secrets(
            prefix=secret_prefix(self._device, self._deployment)
        ):
            if name not in kept and all(labels.get(k) == v for k, v in self._labels.items()):
                self._store.remove_secret(name)
