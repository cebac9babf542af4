"""Whole bucket entries: one decoder per bucket (key and value checked together), and the
builders a device uses to write its own.

Why it exists: a value is only half of an entry. ``info.d1`` holding a value that names
``d2`` is a forgery (a device passing off labels or a phase as another's), and every
reader must refuse it the same way: the operator, ``fleetctl`` and the load checker all
read entries through these decoders. A device (the real agent, the simulated device of
the load swarm and the tests) builds what it writes through the builders, so no reader or
writer spells a key or an encoding of its own.

Decoders take the key, the value and whether the entry is a deletion (a KV delete marker
or purge, whose value is empty); they return a typed entry, or raise
:class:`~fleet.errors.ContractError` naming the key. A deletion decodes to an entry whose
value is ``None``. This module must never do I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import msgspec

from fleet.errors import ContractError

from .codec import (
    Buffer,
    decode_heartbeat,
    decode_info,
    decode_score,
    decode_state,
    encode_heartbeat,
    encode_info,
    encode_score,
    encode_state,
)
from .heartbeat import AgentHealth, HeartbeatPayload
from .info import DeviceInfo, Inventory
from .keys import (
    desired_state_key,
    device_heartbeat_key,
    device_info_key,
    device_state_key,
    parse_desired_state_key,
    parse_device_heartbeat_key,
    parse_device_info_key,
    parse_device_state_key,
)
from .limits import truncate_message
from .names import DeploymentName, DeviceId
from .scores import ReconcileScore
from .state import DeploymentState, Health, Phase


class InfoEntry(msgspec.Struct, frozen=True, kw_only=True):
    """``info.<device>``: the device's info, or ``None`` once deleted."""

    device: DeviceId
    info: DeviceInfo | None


class HeartbeatEntry(msgspec.Struct, frozen=True, kw_only=True):
    """``heartbeat.<device>``: the device's last beat, or ``None`` once deleted."""

    device: DeviceId
    beat: HeartbeatPayload | None


class ReportEntry(msgspec.Struct, frozen=True, kw_only=True):
    """``state.<device>.<deployment>``: the device's report, or ``None`` once deleted."""

    device: DeviceId
    deployment: DeploymentName
    state: DeploymentState | None


class DesiredEntry(msgspec.Struct, frozen=True, kw_only=True):
    """``<device>.<deployment>``: the score to run, or ``None`` once deleted."""

    device: DeviceId
    deployment: DeploymentName
    score: ReconcileScore | None


def _where(key: str, exc: ContractError) -> ContractError:
    return type(exc)(f"entry {key!r}: {exc}", field=exc.field)


def decode_info_entry(key: str, value: Buffer, *, deleted: bool = False) -> InfoEntry:
    """A device-info entry; the value must name the key's device."""
    device = parse_device_info_key(key)
    if deleted:
        return InfoEntry(device=device, info=None)
    try:
        info = decode_info(value)
    except ContractError as exc:
        raise _where(key, exc) from exc
    if info.device_id != device:
        raise ContractError(
            f"entry {key!r}: the value names device {str(info.device_id)!r}, the key does not",
            field="device_id",
        )
    return InfoEntry(device=device, info=info)


def decode_heartbeat_entry(key: str, value: Buffer, *, deleted: bool = False) -> HeartbeatEntry:
    """A device-heartbeat entry; the value must name the key's device."""
    device = parse_device_heartbeat_key(key)
    if deleted:
        return HeartbeatEntry(device=device, beat=None)
    try:
        beat = decode_heartbeat(value)
    except ContractError as exc:
        raise _where(key, exc) from exc
    if beat.device_id != device:
        raise ContractError(
            f"entry {key!r}: the value names device {str(beat.device_id)!r}, the key does not",
            field="device_id",
        )
    return HeartbeatEntry(device=device, beat=beat)


def decode_report_entry(key: str, value: Buffer, *, deleted: bool = False) -> ReportEntry:
    """A device-state entry; the value must name the key's device and deployment."""
    device, deployment = parse_device_state_key(key)
    if deleted:
        return ReportEntry(device=device, deployment=deployment, state=None)
    try:
        state = decode_state(value)
    except ContractError as exc:
        raise _where(key, exc) from exc
    if state.device_id != device or state.deployment != deployment:
        raise ContractError(
            f"entry {key!r}: the value names {state.device_id}/{state.deployment}, "
            "the key does not",
            field="device_id" if state.device_id != device else "deployment",
        )
    return ReportEntry(device=device, deployment=deployment, state=state)


def decode_desired_entry(key: str, value: Buffer, *, deleted: bool = False) -> DesiredEntry:
    """A desired-state entry, its score decoded."""
    device, deployment = parse_desired_state_key(key)
    if deleted:
        return DesiredEntry(device=device, deployment=deployment, score=None)
    try:
        score = decode_score(value)
    except ContractError as exc:
        raise _where(key, exc) from exc
    return DesiredEntry(device=device, deployment=deployment, score=score)


# -- builders: what a device writes, key and value ------------------------------------------


def info_entry(
    *,
    device: DeviceId,
    labels: Mapping[str, str],
    inventory: Inventory,
    agent_version: str,
    at: dt.datetime,
    runtimes: Sequence[str] | None = None,
    runtime_versions: Mapping[str, str] | None = None,
) -> tuple[str, bytes]:
    """``(key, value)`` of a device's info; ``runtimes``: the score types it can run
    (left out when ``None``, as an older agent leaves it out); ``runtime_versions``:
    what each drives, in words (left out when ``None`` or empty)."""
    info = DeviceInfo(
        device_id=device,
        labels=dict(labels),
        inventory=inventory,
        agent_version=agent_version,
        updated_at=at,
        runtimes=None if runtimes is None else list(runtimes),
        runtime_versions=dict(runtime_versions) if runtime_versions else None,
    )
    return device_info_key(device), encode_info(info)


def heartbeat_entry(
    *,
    device: DeviceId,
    at: dt.datetime,
    seq: int,
    instance_id: str | None = None,
    health: AgentHealth | None = None,
) -> tuple[str, bytes]:
    """``(key, value)`` of a device's ``seq``-th heartbeat of agent run ``instance_id``."""
    beat = HeartbeatPayload(
        device_id=device, at=at, seq=seq, instance_id=instance_id, health=health
    )
    return device_heartbeat_key(device), encode_heartbeat(beat)


def report_entry(
    *,
    device: DeviceId,
    deployment: DeploymentName,
    phase: Phase,
    desired_revision: int,
    at: dt.datetime,
    message: str | None = None,
    running_revision: int | None = None,
    health: Health | None = None,
    exit_code: int | None = None,
) -> tuple[str, bytes]:
    """``(key, value)`` of a device's report; the message is cut to its bound
    (``health``, ``exit_code``: left out when None, as an older agent leaves them out)."""
    state = DeploymentState(
        device_id=device,
        deployment=deployment,
        phase=phase,
        desired_revision=desired_revision,
        message=truncate_message(message),
        updated_at=at,
        running_revision=running_revision,
        health=health,
        exit_code=exit_code,
    )
    return device_state_key(device, deployment), encode_state(state)


def desired_entry(
    *, device: DeviceId, deployment: DeploymentName, score: ReconcileScore
) -> tuple[str, bytes]:
    """``(key, value)`` of a desired-state entry (what the operator writes)."""
    return desired_state_key(device, deployment), encode_score(score)
