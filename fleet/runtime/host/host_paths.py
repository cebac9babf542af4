"""Whether this device will bind-mount a host path into a container, looked at on the device.

Why it exists: a volume's ``host_path`` (docs/workloads.md "Host paths") is privileged and
checked by the contract against a deny list (:data:`~fleet.contracts.workload.
HOST_PATH_DENIED`), but only as a string: on the device ``/data/cfg`` may be a symlink to
``/etc``, or the path may hold what makes the agent the agent: its state dir (its
``identity.seed`` opens every Secret sealed to the device), its home (a rootless agent's
podman configuration and storage live there) and podman's storage (every podman secret,
so every ``secret_env`` value of every deployment). So before a container that mounts one
is made, the agent resolves the path (symlinks followed) and checks it again: it must
exist, its real path must not be denied, and it must neither be inside nor contain a
protected directory. Podman is then given the real path, not the one the score spelled,
so a symlink swapped in after the check does not move the mount.

What it must never do: create, change or remove anything on the host.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from fleet.contracts.workload import host_path_denied


class HostPathRefused(Exception):
    """This device will not bind-mount the path; the message says why (never naming the
    field: the caller does)."""


def resolve_host_path(path: str, *, protected: Iterable[Path | str]) -> str:
    """The real path to bind-mount for ``path``; :class:`HostPathRefused` if it may not be."""
    try:
        real = os.path.realpath(path, strict=True)
    except (OSError, ValueError):
        raise HostPathRefused(
            f"{path[:80]!r} does not exist on this device (or cannot be read)"
        ) from None
    denied = host_path_denied(real)
    if denied is not None:
        raise HostPathRefused(
            f"{path[:80]!r} resolves to {real[:80]!r}, {denied}, which a container may never mount"
        )
    for root in protected:
        kept = os.path.realpath(root)
        inside, holds = real.startswith(kept.rstrip("/") + "/"), kept.startswith(real + "/")
        if real == kept or inside or holds:
            raise HostPathRefused(
                f"{path[:80]!r} is or holds {kept[:80]!r}, the agent's own (its state, "
                "home or podman's storage): a container may never mount it"
            )
    return real


def agent_home() -> Path | None:
    """The agent's home (a rootless agent's podman configuration and storage), if known."""
    try:
        return Path.home()
    except (RuntimeError, KeyError):  # no $HOME and no passwd entry
        return None
