"""Whether this device will bind-mount a host path into a container, looked at on the device.

Why it exists: a volume's ``host_path`` (docs/workloads.md "Host paths") is privileged and
checked by the contract against a deny list (:data:`~fleet.contracts.workload.
HOST_PATH_DENIED`), but only as a string: on the device ``/data/cfg`` may be a symlink to
``/etc``, or the path may hold the agent's own state dir (its ``identity.seed`` opens
every Secret sealed to the device). So before a container that mounts one is made, the
agent resolves the path (symlinks followed) and checks it again: it must exist, its real
path must not be denied, and it must neither be inside nor contain a protected directory.

What it must never do: create, change or remove anything on the host.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from fleet.contracts.workload import host_path_denied


def host_path_refusal(path: str, *, protected: Sequence[Path]) -> str | None:
    """Why ``path`` may not be bind-mounted on this device (None: it may)."""
    try:
        real = os.path.realpath(path, strict=True)
    except (OSError, ValueError):
        return f"{path[:80]!r} does not exist on this device (or cannot be read)"
    denied = host_path_denied(real)
    if denied is not None:
        return (
            f"{path[:80]!r} resolves to {real[:80]!r}, {denied}, which a container may never mount"
        )
    for root in protected:
        kept = os.path.realpath(root)
        if real == kept or real.startswith(kept + "/") or kept.startswith(real.rstrip("/") + "/"):
            return (
                f"{path[:80]!r} is or holds the agent's state dir {kept[:80]!r} (the device's "
                "key): a container may never mount it"
            )
    return None
