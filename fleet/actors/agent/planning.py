"""What one reconcile pass must do, worked out from the score and the containers found.

Why it exists: the reconciler's pass (:mod:`.reconciler`) acts in a fixed order (pull,
remove strays, create or replace, keep running); which containers fall in which step is a
pure function of the score and of what podman listed, kept here so it reads (and is
tested) on its own.

What it must never do: call podman, or count a container twice (a second container with
a wanted name is a stray, removed, never adopted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fleet.contracts import ContainerSpec, DeploymentName, DeviceId, PodmanScore
from fleet.runtime.podman.port import Container, container_name, spec_hash


def plan_pass(
    device: DeviceId,
    deployment: DeploymentName,
    score: PodmanScore,
    owned: Sequence[Container],
    files: Mapping[str, str] | None = None,
    *,
    secret_env: Mapping[str, str] | None = None,
) -> tuple[dict[str, ContainerSpec], dict[str, Container], list[Container], list[str]]:
    """``(wanted, current, strays, changed)``: the score's containers by podman name, the
    container found for each, the containers to remove, and the names whose container
    must be made (absent, or made from another spec). ``files``: the digest of each
    container's files (by the score's container name), part of what it is made from;
    ``secret_env``: likewise, the digest of its secret env variables' values."""
    digests, env = files or {}, secret_env or {}
    wanted = {container_name(device, deployment, c.name): c for c in score.containers}
    current: dict[str, Container] = {}
    strays: list[Container] = []
    for container in owned:
        name = container.name.lstrip("/")
        if name in wanted and name not in current:
            current[name] = container
        else:
            strays.append(container)
    changed = [
        name
        for name, spec in wanted.items()
        if name not in current
        or current[name].spec_hash != spec_hash(spec, digests.get(spec.name), env.get(spec.name))
    ]
    return wanted, current, strays, changed
