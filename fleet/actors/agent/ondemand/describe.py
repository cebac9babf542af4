"""A device's description, as ``fleetctl describe device`` shows it, within its bound.

Why it exists: the answer joins what the device last said about itself
(:class:`~.book.Snapshot`: labels, inventory, agent version, each deployment's report
and last failure) with what podman says now about its containers, and must fit one
answer message (:data:`~fleet.contracts.ondemand.MAX_CHUNK_BYTES`): 64 deployments
each with a failure of 4,096 characters would not. So it shortens the messages first,
then leaves deployments out, counted in ``more``.

What it must never do: call podman for anything but listing the device's own
containers, or return a description that does not encode within the bound.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import msgspec

from fleet.contracts import DeploymentName, DeviceId
from fleet.contracts.ondemand import (
    MAX_DESCRIBED_CONTAINERS,
    MAX_DESCRIBED_DEPLOYMENTS,
    ContainerDescription,
    DeploymentDescription,
    DeviceDescription,
    OnDemandError,
    encode_answer,
)
from fleet.errors import ContractError, FleetError
from fleet.runtime.podman.port import (
    CONTAINER_LABEL,
    Container,
    ContainerRuntime,
    is_owned,
    owner_labels,
)

from .book import Snapshot

_SHORTER = (None, 512, 120)  # message lengths tried before leaving deployments out


def describe(
    *,
    device_id: DeviceId,
    instance_id: str,
    book: Snapshot,
    runtime: ContainerRuntime,
    now: Callable[[], dt.datetime],
) -> DeviceDescription:
    """The description now (podman unreachable: the reports alone, and an error saying so)."""
    error = None
    try:
        containers = [
            c
            for c in runtime.list_containers(labels=owner_labels(device_id))
            if is_owned(c, device_id)
        ]
    except FleetError as exc:
        containers = []
        error = OnDemandError(code="unavailable", message=f"containers unknown: {exc}"[:1000])
    by_deployment: dict[str, list[Container]] = {}
    for container in containers:
        if container.deployment:
            by_deployment.setdefault(container.deployment, []).append(container)
    names = sorted(set(book.states) | set(book.failures) | set(by_deployment))
    valid = []
    for name in names:
        try:
            valid.append(DeploymentName.try_new(name))
        except ContractError:
            continue
    info = book.info
    base = DeviceDescription(
        device_id=device_id,
        at=now(),
        labels=dict(info.labels) if info else {},
        inventory=info.inventory if info else None,
        agent_version=info.agent_version if info else "",
        instance_id=instance_id[:64],
        error=error,
    )
    for length in _SHORTER:
        deployments = [_deployment(n, book, by_deployment.get(n, []), length) for n in valid]
        kept = deployments[:MAX_DESCRIBED_DEPLOYMENTS]
        while True:
            described = msgspec.structs.replace(
                base, deployments=tuple(kept), more=len(deployments) - len(kept)
            )
            try:
                encode_answer(described)
                return described
            except ContractError:
                if length is not _SHORTER[-1] or not kept:
                    break
                kept = kept[: len(kept) // 2]
    return base  # unreachable in practice: the base alone is a few hundred bytes


def _deployment(
    name: DeploymentName, book: Snapshot, containers: list[Container], length: int | None
) -> DeploymentDescription:
    state = book.states.get(name)
    failure = book.failures.get(name)

    def cut(text: str | None) -> str | None:
        if text is None or length is None or len(text) <= length:
            return text
        return text[: length - 1] + "\u2026"

    return DeploymentDescription(
        deployment=name,
        phase=state.phase if state else None,
        desired_revision=state.desired_revision if state else None,
        running_revision=state.running_revision if state else None,
        message=cut(state.message) if state else None,
        updated_at=state.updated_at if state else None,
        containers=tuple(
            _container(c)
            for c in sorted(containers, key=lambda c: c.name)[:MAX_DESCRIBED_CONTAINERS]
        ),
        last_failure=cut(failure.message) if failure else None,
        last_failure_at=failure.at if failure else None,
    )


def _when(started_at: str) -> str:
    """podman's list says when a container started in unix seconds: as RFC 3339."""
    if started_at.isascii() and started_at.isdigit() and 0 < len(started_at) <= 12:
        at = dt.datetime.fromtimestamp(int(started_at), dt.UTC)
        return at.isoformat().replace("+00:00", "Z")
    return started_at[:64]


def _container(container: Container) -> ContainerDescription:
    code = container.exit_code
    return ContainerDescription(
        name=(container.labels.get(CONTAINER_LABEL) or container.name)[:63],
        state=container.state[:256],
        exit_code=code if isinstance(code, int) and -(2**31) <= code <= 2**31 else None,
        started_at=_when(container.started_at),
        revision=container.revision,
    )
