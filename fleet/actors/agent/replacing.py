"""Making, replacing and removing one container, in an order that survives a crash anywhere.

Why it exists: an image or spec update used to stop and remove the running container
before pulling the new image, so a tag that did not exist took a working service down
for as long as the pulls failed. The reconciler now pulls every image first; this module
holds the container steps that follow, in one place, with why each order is safe.

Replace (make-before-break), for a container whose spec changed, its image present:

1. create the new container as ``<name>.next`` (the old one keeps running; two
   containers publishing one host port can both *exist*, only one can *run*);
2. stop the old one (grace ``stop_timeout``, then SIGKILL) and remove it: the outage
   starts here, and lasts for steps 2-4 only (no pull, no create inside it);
3. rename the new one to ``<name>`` (podman's rename endpoint);
4. start it.

A crash (SIGKILL of the agent) between any two steps converges on restart, with no
duplicate and no orphan: the next pass removes every container of the deployment whose
name is not one the score wants (a ``.next`` left by steps 1-2 included; all carry the
deployment's labels, so a deleted deployment's sweep finds them too), then creates what
is missing (after step 2) or starts what was created but never started (after step 3).

What it must never do: stop the old container before the new one exists, or start a
container that has run before (the reconciler replaces such a container with
:meth:`Replacer.renew`; see ``RESTART_GRACE`` in :mod:`.reconciler`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from fleet.contracts import ContainerSpec
from fleet.runtime.podman.port import (
    CONTAINER_LABEL,
    REVISION_LABEL,
    SPEC_HASH_LABEL,
    Container,
    ContainerRuntime,
    spec_hash,
    temporary_name,
)


class Replacer:
    """The container steps of a reconciler pass, over the runtime port."""

    def __init__(self, *, runtime: ContainerRuntime, stop_timeout: float) -> None:
        self._runtime = runtime
        self._stop_timeout = stop_timeout

    @staticmethod
    def labels(
        owner: Mapping[str, str],
        spec: ContainerSpec,
        revision: int,
        files: str | None = None,
        *,
        secret_env: str | None = None,
    ) -> dict[str, str]:
        """A new container's labels: its owner's, its name, spec hash (with its files'
        and secret env variables' digests, if it has them) and revision."""
        return {
            **owner,
            CONTAINER_LABEL: spec.name,
            SPEC_HASH_LABEL: spec_hash(spec, files, secret_env),
            REVISION_LABEL: str(revision),
        }

    def create(
        self,
        *,
        name: str,
        spec: ContainerSpec,
        labels: Mapping[str, str],
        mounts: Sequence[tuple[str, str]] = (),
        secret_env: Mapping[str, str] | None = None,
    ) -> str:
        """Create ``name`` and start it; return its id."""
        container_id = self._runtime.create(
            name=name, spec=spec, labels=labels, mounts=mounts, secret_env=secret_env
        )
        self._runtime.start(container_id)
        return container_id

    def replace(
        self,
        *,
        name: str,
        spec: ContainerSpec,
        labels: Mapping[str, str],
        old: Container,
        on_break: Callable[[], None],
        mounts: Sequence[tuple[str, str]] = (),
        secret_env: Mapping[str, str] | None = None,
    ) -> str:
        """Steps 1-4 of the module doc; ``on_break`` is called just before step 2."""
        new_id = self._runtime.create(
            name=temporary_name(name), spec=spec, labels=labels, mounts=mounts,
            secret_env=secret_env,
        )  # fmt: skip
        on_break()
        self.stop_and_remove(old.id)
        self._runtime.rename(new_id, name)
        self._runtime.start(new_id)
        return new_id

    def renew(
        self,
        *,
        name: str,
        spec: ContainerSpec,
        labels: Mapping[str, str],
        old: Container,
        mounts: Sequence[tuple[str, str]] = (),
        secret_env: Mapping[str, str] | None = None,
    ) -> str:
        """A fresh container for one that has run and stopped (it is not running: no
        port to hand over, so no temporary name)."""
        self._runtime.remove(old.id)
        return self.create(
            name=name, spec=spec, labels=labels, mounts=mounts, secret_env=secret_env
        )

    def start(self, container_id: str) -> None:
        """Start a container that was created and never started."""
        self._runtime.start(container_id)

    def remove(self, container_id: str) -> None:
        self._runtime.remove(container_id)

    def stop_and_remove(self, container_id: str) -> None:
        self._runtime.stop(container_id, timeout=self._stop_timeout)
        self._runtime.remove(container_id)
