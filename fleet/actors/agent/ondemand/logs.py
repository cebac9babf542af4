"""Which container a logs request means, and its lines cut into answer-sized chunks.

Why it exists: a request names a deployment and maybe a container (its name in the
score); the device answers only for its own containers (the owner labels, checked
again here), says clearly what it has when the name is wrong ("container 'db' is not
one of web's containers: app, sidecar"), and never sends a message over the bound:
:func:`chunks` packs lines into :class:`~fleet.contracts.ondemand.LogsChunk`\\ s that
each encode within :data:`~fleet.contracts.ondemand.MAX_CHUNK_BYTES`.

Plain: no actor, no I/O but the one podman listing. What it must never do: pick a
container of another device or deployment, or return a chunk that does not encode.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from fleet.contracts import DeploymentName, DeviceId
from fleet.contracts.ondemand import (
    MAX_CHUNK_BYTES,
    MAX_CHUNK_LINES,
    LogsChunk,
    LogsRequest,
    OnDemandError,
)
from fleet.errors import FleetError
from fleet.runtime.podman.port import (
    CONTAINER_LABEL,
    Container,
    ContainerRuntime,
    container_name,
    is_owned,
    owner_labels,
)

# Room for a chunk's other fields: its lines fill at most this many encoded bytes.
_FILL = MAX_CHUNK_BYTES - 2 * 1024
_JSON = msgspec.json.Encoder()


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """The container a request resolved to."""

    container_id: str
    container: str  # its name in the score


def resolve(
    request: LogsRequest, *, device_id: DeviceId, runtime: ContainerRuntime
) -> Target | OnDemandError:
    """The container of ``request``, or the error to answer."""
    deployment = request.deployment
    try:
        found = runtime.list_containers(labels=owner_labels(device_id, deployment))
    except FleetError as exc:
        return OnDemandError(code="unavailable", message=f"podman: {exc}"[:1000])
    mine = [c for c in found if is_owned(c, device_id) and c.deployment == deployment]
    names = sorted({c.labels.get(CONTAINER_LABEL, "") for c in mine} - {""})
    if not names:
        return OnDemandError(
            code="not-found", message=f"deployment {deployment} has no container on {device_id}"
        )
    wanted = request.container
    if wanted is None:
        if len(names) > 1:
            return OnDemandError(
                code="bad-request",
                message=f"deployment {deployment} has {len(names)} containers: name one of "
                f"{', '.join(names)}",
            )
        wanted = names[0]
    if wanted not in names:
        return OnDemandError(
            code="not-found",
            message=f"container {wanted!r} is not one of {deployment}'s containers: "
            f"{', '.join(names)}",
        )
    return Target(container_id=_pick(mine, device_id, deployment, wanted).id, container=wanted)


def _pick(
    containers: list[Container], device_id: DeviceId, deployment: DeploymentName, name: str
) -> Container:
    """The container under its own name, else its replacement being made (``.next``);
    a running one first."""
    full = container_name(device_id, deployment, name)
    candidates = [c for c in containers if c.labels.get(CONTAINER_LABEL) == name]
    return sorted(candidates, key=lambda c: (c.name.lstrip("/") != full, not c.running, c.name))[0]


def chunks(
    lines: Iterable[str],
    *,
    device_id: DeviceId,
    request: LogsRequest,
    container: str,
    first_seq: int,
    skipped: int = 0,
    session: str | None = None,
    done: bool = False,
) -> list[LogsChunk]:
    """``lines`` as chunks numbered from ``first_seq`` (at least one chunk: an empty one
    carries ``done`` or acknowledges a renewal); only the last may say ``done``."""
    packs: list[list[str]] = [[]]
    size = 0
    for line in lines:
        cost = len(_JSON.encode(line)) + 1
        if packs[-1] and (size + cost > _FILL or len(packs[-1]) >= MAX_CHUNK_LINES):
            packs.append([])
            size = 0
        packs[-1].append(line)
        size += cost
    last = len(packs) - 1
    return [
        LogsChunk(
            device_id=device_id,
            seq=first_seq + i,
            deployment=request.deployment,
            container=container,
            lines=tuple(pack),
            skipped=skipped if i == 0 else 0,
            session=session,
            done=done and i == last,
        )
        for i, pack in enumerate(packs)
    ]


def error_chunk(
    error: OnDemandError, *, device_id: DeviceId, seq: int = 0, session: str | None = None
) -> LogsChunk:
    return LogsChunk(device_id=device_id, seq=seq, session=session, done=True, error=error)
