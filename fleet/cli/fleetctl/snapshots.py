"""A bucket snapshot read entry by entry, the bad entries skipped: how a reader reads.

Why it exists: ``fleetctl`` and the load swarm's checker (``loadtest/check.py``) read the
same four buckets the operator reads, and must skip the same entries it skips: a key or a
value that breaks the contract, or a key and a value naming different devices (a device
passing off its labels, beats or phases as another's). The decoding is the contracts'
own, one decoder per bucket for the whole entry (:func:`~fleet.contracts.decode_info_entry`,
:func:`~fleet.contracts.decode_heartbeat_entry`, :func:`~fleet.contracts.decode_report_entry`,
the operator's too); this module only walks a snapshot with one of them.

Desired-state entries are the operator's own writes, and a reader needs only their key
and revision: like the operator, which never decodes what it finds there (it rewrites any
value that differs from what it would write), :func:`desired_revisions` checks the key
only, so a device whose entry holds a bad value still counts as targeted.

What it must never do: I/O, or let one bad entry stop the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, TypeVar

from fleet.contracts import DeploymentName, DeviceId, parse_desired_state_key
from fleet.contracts.codec import Buffer
from fleet.errors import ContractError
from fleet.runtime.nats.kv import KvEntry

T_co = TypeVar("T_co", covariant=True)


class EntryDecoder(Protocol[T_co]):
    """A contracts ``decode_*_entry`` function."""

    def __call__(self, key: str, value: Buffer, *, deleted: bool = ...) -> T_co: ...


def decoded(snapshot: Mapping[str, KvEntry], decode: EntryDecoder[T_co]) -> list[T_co]:
    """Every entry of ``snapshot`` that decodes; the others are skipped."""
    out: list[T_co] = []
    for entry in snapshot.values():
        try:
            out.append(decode(entry.key, entry.value, deleted=entry.deleted))
        except ContractError:
            continue
    return out


def desired_revisions(
    snapshot: Mapping[str, KvEntry],
) -> dict[tuple[DeviceId, DeploymentName], int]:
    """(device, deployment) -> revision of each desired-state entry with a valid key."""
    revisions: dict[tuple[DeviceId, DeploymentName], int] = {}
    for entry in snapshot.values():
        if entry.deleted:
            continue
        try:
            revisions[parse_desired_state_key(entry.key)] = entry.revision
        except ContractError:
            continue
    return revisions
