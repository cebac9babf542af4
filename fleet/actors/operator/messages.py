"""The operator's messages: frozen structs, one meaning each.

Sources -> fleet index: ``KvBatch``/``KvSynced`` (raw, to the source actors), then
``DesiredSeen``, ``ReportsSeen``, ``InfosSeen``, ``BeatsSeen``, ``DeploymentsListed``,
``DeploymentEvent``, ``SourceSynced``. Fleet index -> Deployment actors: ``Spec``,
``Activate``, ``DesiredSeen``, ``ReportsSeen``, ``TargetChanges``, ``Liveness``. Fleet
index -> device actors: ``DeviceInfoSeen``, ``DeviceBeat``, ``DeviceOnline``,
``DevicePhase``, ``DeviceDuplicate``, ``DeviceForgotten``. Device actors -> mirror:
``MirrorDevice``. Replies from the runtime (``WritesDone``, ``PatchDone``...) come back
through ``tell_when_done``.
"""

from __future__ import annotations

import datetime
from typing import Any, Literal

import msgspec

from fleet.contracts import DeploymentName, DeviceId, DeviceInfo, Phase
from fleet.runtime.kube.client import KubeObject
from fleet.runtime.nats.kv import KvEntry

from .spec import DeploymentSpec

DeploymentKey = tuple[str, str]  # (namespace, name)


class Msg(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every operator message."""


# -- raw sources -------------------------------------------------------------------------


class KvBatch(Msg, frozen=True, kw_only=True):
    entries: tuple[KvEntry, ...]


class KvSynced(Msg, frozen=True, kw_only=True):
    pass


class SourceSynced(Msg, frozen=True, kw_only=True):
    source: str


class DesiredEntry(Msg, frozen=True, kw_only=True):
    device: DeviceId
    deployment: DeploymentName
    revision: int
    value: bytes | None  # None: deleted


class DesiredSeen(Msg, frozen=True, kw_only=True):
    entries: tuple[DesiredEntry, ...]


class Report(Msg, frozen=True, kw_only=True):
    device: DeviceId
    deployment: DeploymentName
    phase: Phase | None  # None: the report was deleted
    desired_revision: int
    message: str | None
    updated_at: datetime.datetime | None  # formatted only when a Device is written
    revision: int = 0  # of the device-state entry (its delete, when forgotten, is a CAS)


class ReportsSeen(Msg, frozen=True, kw_only=True):
    reports: tuple[Report, ...]


class InfosSeen(Msg, frozen=True, kw_only=True):
    infos: tuple[tuple[DeviceId, DeviceInfo | None, int], ...]  # (device, info|None, revision)


class Beat(Msg, frozen=True, kw_only=True):
    """A device's latest heartbeat in a batch (``when`` None: its key was deleted)."""

    device: DeviceId
    at: float
    when: datetime.datetime | None
    revision: int
    # The instance id of every beat of this key in the batch, in order (a batch may hold
    # A, B, A for one key: two agents under one id), not just of the latest.
    instances: tuple[str, ...] = ()


class BeatsSeen(Msg, frozen=True, kw_only=True):
    beats: tuple[Beat, ...]


class DeploymentsListed(Msg, frozen=True, kw_only=True):
    scope: str | None
    objects: tuple[KubeObject, ...]


class DeploymentEvent(Msg, frozen=True, kw_only=True):
    type: str
    obj: KubeObject


class Tick(Msg, frozen=True, kw_only=True):
    pass


# -- to Deployment actors ----------------------------------------------------------------


class Spec(Msg, frozen=True, kw_only=True):
    """The Deployment resource as last seen, with its validated spec or the reason not."""

    obj: KubeObject
    spec: DeploymentSpec | None
    error: str | None
    conflict_with: str | None  # "namespace/name" owning the same deployment name


class Synced(Msg, frozen=True, kw_only=True):
    """The fleet index has read every source; ownership and entries are now known."""


class Activate(Msg, frozen=True, kw_only=True):
    """This actor owns its name: everything known about it, and its targets."""

    desired: tuple[DesiredEntry, ...]
    reports: tuple[Report, ...]
    targets: frozenset[DeviceId]
    offline: frozenset[DeviceId]


class TargetChanges(Msg, frozen=True, kw_only=True):
    added: tuple[tuple[DeviceId, bool], ...]  # (device, online)
    removed: tuple[DeviceId, ...]


class Retarget(Msg, frozen=True, kw_only=True):
    targets: frozenset[DeviceId]
    offline: frozenset[DeviceId]


class Liveness(Msg, frozen=True, kw_only=True):
    online: tuple[DeviceId, ...]
    offline: tuple[DeviceId, ...]


class WritesDone(Msg, frozen=True, kw_only=True):
    puts: tuple[tuple[DeviceId, bytes, int | None], ...]  # (device, value, revision|None=failed)
    deletes: tuple[tuple[DeviceId, int | None], ...]  # (device, marker revision|None=failed)
    error: str | None


class DesiredWritten(Msg, frozen=True, kw_only=True):
    """A Deployment actor's completed writes, so the fleet index's picture stays current."""

    entries: tuple[DesiredEntry, ...]


class Verified(Msg, frozen=True, kw_only=True):
    """Desired entries re-read after a report named a revision the actor did not write."""

    entries: tuple[tuple[DeviceId, int, bytes | None], ...]  # (device, revision, value|None)
    error: str | None


class Flush(Msg, frozen=True, kw_only=True):
    pass


class Retry(Msg, frozen=True, kw_only=True):
    pass


class PatchDone(Msg, frozen=True, kw_only=True):
    error: str | None


class FinalizerDone(Msg, frozen=True, kw_only=True):
    present: bool
    error: str | None


# -- to device actors and the mirror -----------------------------------------------------


class DeviceInfoSeen(Msg, frozen=True, kw_only=True):
    info: DeviceInfo | None


class DeviceBeat(Msg, frozen=True, kw_only=True):
    at: datetime.datetime


class DeviceOnline(Msg, frozen=True, kw_only=True):
    online: bool


class DevicePhase(Msg, frozen=True, kw_only=True):
    report: Report


class DeviceDuplicate(Msg, frozen=True, kw_only=True):
    """Agent instances beating interleaved under this id (None: one instance again)."""

    instances: tuple[str, ...] | None


class DeviceForgotten(Msg, frozen=True, kw_only=True):
    """Silent for longer than the retention: mark the Device stale, then stop."""

    at: datetime.datetime


class MirrorDevice(Msg, frozen=True, kw_only=True):
    device: DeviceId
    labels: tuple[tuple[str, str], ...]
    status: bytes  # the Device status as JSON
    delete: bool = False
    final: bool = False  # the device is forgotten: the mirror drops what it kept of it


class MirrorDirty(Msg, frozen=True, kw_only=True):
    """A device's picture changed; the mirror pulls it (``MirrorPull``) when it can write."""

    device: DeviceId
    ref: Any


class MirrorPull(Msg, frozen=True, kw_only=True):
    pass


class MirrorKnown(Msg, frozen=True, kw_only=True):
    names: tuple[str, ...] | None
    error: str | None


class MirrorWritten(Msg, frozen=True, kw_only=True):
    device: DeviceId
    kind: Literal["write", "delete"]
    error: str | None
    temporary: bool = True  # a failure worth retrying (unreachable, conflict)
