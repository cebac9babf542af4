"""The operator's messages: frozen structs, one meaning each.

Sources -> fleet index: ``KvBatch``/``KvSynced`` (raw, to the source actors), then
``DesiredSeen``, ``ReportsSeen``, ``InfosSeen``, ``BeatsSeen``, ``DeploymentsListed``,
``DeploymentEvent``, ``SourceSynced``.

Fleet index -> Deployment actors: ``Spec``, ``Synced``, ``Activate`` (the desired entries
of its name, handed over), ``TargetChanges``/``Retarget``, ``DesiredSeen``, ``ReportsSeen``
(reports of devices it does not target, checked for foreign writes, never kept),
``Retire``. Deployment actor -> fleet index: ``Released`` (its entries, handed back when
it retires).

Fleet index -> device actors: ``DeviceInfoSeen``, ``Beat`` and ``Report`` (as decoded),
``DeviceDuplicate``, ``DeviceForgotten``. Deployment actor <-> device actors: ``Expect``
/``Unexpect`` down (the revision of the entry each targeted device should report),
``Classified`` and ``Reported`` up through the Deployment's batched channel (the
device's class for it, decided where its reports and liveness live; a revision to check
for a foreign write), noticed by ``ClassesQueued``. Device actors -> mirror:
``MirrorDirty``/``MirrorDevice``. Replies from the runtime (``WritesDone``,
``PatchDone``...) come back through ``tell_when_done``.
"""

from __future__ import annotations

import datetime
from typing import Any, Literal

import msgspec

from fleet.contracts import DeploymentName, DeviceId, DeviceInfo, Phase
from fleet.runtime.kube.client import KubeObject
from fleet.runtime.nats.kv import KvEntry

from .approvals import Approval
from .spec import DeploymentSpec
from .status import Class

DeploymentKey = tuple[str, str]  # (namespace, name)
DeviceRef = Any  # a device actor's pykka.ActorRef (a thread-safe handle, not a value)


class Msg(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every operator message."""


# -- raw sources -------------------------------------------------------------------------


class KvBatch(Msg, frozen=True, kw_only=True):
    entries: tuple[KvEntry, ...]


class KvSynced(Msg, frozen=True, kw_only=True):
    pass


class SourceSynced(Msg, frozen=True, kw_only=True):
    source: str


APPROVED_LABELS = "approved-labels"  # the source: Device resources' spec.labels


class LabelsApproved(Msg, frozen=True, kw_only=True):
    """Device resources' approved labels (``listed``: all of them, from a list)."""

    approvals: tuple[Approval, ...]
    listed: bool = False


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
    unhealthy: bool = False  # its health checks say unhealthy (issue 14; phase unchanged)


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
    # The latest beat's agent counters (AgentHealth.counters()), if it carried them and
    # an instance id (then the last of ``instances`` is its run).
    health: tuple[int, ...] | None = None
    # The key's only beat in the batch, and it differs from the key's last one in ``at``
    # and ``seq`` only (the same run, the same counters: nothing but liveness is new).
    repeat: bool = False


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


# -- fleet index <-> Deployment actors ---------------------------------------------------


class Spec(Msg, frozen=True, kw_only=True):
    """The Deployment resource as last seen, with its validated spec or the reason not."""

    obj: KubeObject
    spec: DeploymentSpec | None
    error: str | None
    conflict_with: str | None  # "namespace/name" owning the same deployment name
    name: DeploymentName | None = None  # its name as a deployment name, if it is one


class Synced(Msg, frozen=True, kw_only=True):
    """The fleet index has read every source; ownership and entries are now known."""


class Activate(Msg, frozen=True, kw_only=True):
    """This actor owns its name: the name's desired entries (handed over: from now on
    this actor alone keeps them) and its targets with their device actors."""

    desired: tuple[DesiredEntry, ...]
    targets: tuple[tuple[DeviceId, DeviceRef], ...]
    labels: dict[DeviceId, Any] = msgspec.field(default_factory=dict)  # of the targets
    # the score types each target runs (DeviceInfo.runnable; absent: podman only)
    runtimes: dict[DeviceId, tuple[str, ...]] = msgspec.field(default_factory=dict)


class TargetChanges(Msg, frozen=True, kw_only=True):
    added: tuple[tuple[DeviceId, DeviceRef], ...]
    removed: tuple[DeviceId, ...]
    # the labels of the added devices, and of targets kept whose labels changed
    # (``relabelled``): a rollout's batch selectors match them
    labels: dict[DeviceId, Any] = msgspec.field(default_factory=dict)
    relabelled: tuple[DeviceId, ...] = ()
    # the runtimes of the same devices as ``labels`` (a change of runtimes alone makes a
    # target ``relabelled`` too: its entry may have to be written or deleted)
    runtimes: dict[DeviceId, tuple[str, ...]] = msgspec.field(default_factory=dict)


class Retarget(Msg, frozen=True, kw_only=True):
    targets: tuple[tuple[DeviceId, DeviceRef], ...]
    labels: dict[DeviceId, Any] = msgspec.field(default_factory=dict)  # of the targets
    runtimes: dict[DeviceId, tuple[str, ...]] = msgspec.field(default_factory=dict)


class FilesChanged(Msg, frozen=True, kw_only=True):
    """A ConfigMap or Secret the Deployment's files name changed (``devices`` None: every
    target is rendered again), or these devices' keys did (only they are)."""

    devices: frozenset[str] | None = None


class Retire(Msg, frozen=True, kw_only=True):
    """The resource is gone: hand the name's entries back (``Released``), then stop."""


class Released(Msg, frozen=True, kw_only=True):
    """A retiring owner's desired entries, for the next owner or the orphan sweep."""

    name: DeploymentName
    entries: tuple[DesiredEntry, ...]


class WritesDone(Msg, frozen=True, kw_only=True):
    puts: tuple[tuple[DeviceId, bytes, int | None], ...]  # (device, value, revision|None=failed)
    deletes: tuple[tuple[DeviceId, int | None], ...]  # (device, marker revision|None=failed)
    error: str | None


class Verified(Msg, frozen=True, kw_only=True):
    """Desired entries re-read after a report named a revision the actor did not write."""

    entries: tuple[tuple[DeviceId, int, bytes | None], ...]  # (device, revision, value|None)
    error: str | None


class OrphansDeleted(Msg, frozen=True, kw_only=True):
    """Entries of a name nobody owns, deleted (the fleet index forgets them)."""

    name: DeploymentName
    devices: tuple[DeviceId, ...]
    failed: int = 0
    error: str | None = None


class Flush(Msg, frozen=True, kw_only=True):
    pass


class Retry(Msg, frozen=True, kw_only=True):
    pass


class RevisionsLoaded(Msg, frozen=True, kw_only=True):
    """A Deployment's DeploymentRevisions, read (``records`` by number), or why not."""

    records: tuple[Any, ...]  # fleet.runtime.kube.revisions.RevisionRecord
    problems: tuple[str, ...] = ()
    error: str | None = None


class RevisionCreated(Msg, frozen=True, kw_only=True):
    record: Any  # the RevisionRecord asked for
    error: str | None = None
    conflict: bool = False  # it exists already (another writer): read them again


class OutcomeRecorded(Msg, frozen=True, kw_only=True):
    """A rollout's outcome was journaled on its revision (or not: ``error``)."""

    number: int
    outcome: str
    reason: str
    error: str | None = None


class RolloutTick(Msg, frozen=True, kw_only=True):
    """Look at the rollout again (a pause between batches ended, or a retry is due)."""


class PatchDone(Msg, frozen=True, kw_only=True):
    error: str | None


class FinalizerDone(Msg, frozen=True, kw_only=True):
    present: bool
    error: str | None


# -- Deployment actors <-> device actors -------------------------------------------------


class Expect(Msg, frozen=True, kw_only=True):
    """A Deployment targets this device; the entry it should report is at ``revision``
    (None: none with the current content yet). Classes go to ``reply`` (the Deployment
    actor's :class:`~.batching.Batched` channel of ``Classified``). A new registration is
    answered, unless ``answer`` is False and the class is ``pending`` (what the Deployment
    assumes until told: only a first registration may leave it out; a re-registration
    must answer, or a reply to the earlier one, still on its way, would stand)."""

    deployment: DeploymentName
    reply: Any
    revision: int | None
    answer: bool = True


class Unexpect(Msg, frozen=True, kw_only=True):
    """The Deployment whose channel is ``reply`` no longer targets this device."""

    deployment: DeploymentName
    reply: Any


class Classified(Msg, frozen=True, kw_only=True):
    """A device's class for the Deployment it was sent to (and a failure's message)."""

    device: DeviceId
    cls: Class
    message: str | None = None
    # the revision the device actor expected when it decided (a rollout counts a class
    # only against the entry it has now: one decided for an older entry is stale)
    revision: int | None = None
    unhealthy: bool = False  # running, but its health checks say unhealthy


class Reported(Msg, frozen=True, kw_only=True):
    """A device reported a ``desired_revision`` its Deployment may not have written (newer
    than the one it was told to expect, or none was): the Deployment actor checks it."""

    device: DeviceId
    revision: int


class ClassesQueued(Msg, frozen=True, kw_only=True):
    """``Classified``/``Reported`` values wait in the Deployment actor's channel."""


class RegisterLate(Msg, frozen=True, kw_only=True):
    """Targets whose write is still in flight are registered now (see registrations)."""


# -- fleet index -> device actors, and the mirror ----------------------------------------


class DeviceInfoSeen(Msg, frozen=True, kw_only=True):
    info: DeviceInfo | None


class DeviceDuplicate(Msg, frozen=True, kw_only=True):
    """Agent instances beating interleaved under this id (None: one instance again)."""

    instances: tuple[str, ...] | None


class DeviceForgotten(Msg, frozen=True, kw_only=True):
    """Silent for longer than the retention: mark the Device stale, then stop."""

    at: datetime.datetime


class LivenessCheck(Msg, frozen=True, kw_only=True):
    """Time to look again whether the device's last heartbeat is older than the timeout."""


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
