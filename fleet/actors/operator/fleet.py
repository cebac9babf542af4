"""The fleet index: who exists, who matches what, and where each event must go.

Why it exists: targeting is a join between every device's labels and every
Deployment's selector, and liveness is a sweep over every device's last heartbeat. Both
need the whole fleet in one place; this actor holds it (labels, heartbeats, the latest
desired entry and report per (device, deployment)) and sends each Deployment actor only
what concerns it: its initial picture (``Activate``), then deltas.

Rules it enforces:

* nothing is targeted, written or deleted before every source has synced (the
  Deployment list and the four buckets), so a restart neither drops nor duplicates;
* one owner per deployment name: the earliest-created Deployment (creationTimestamp,
  then namespace); a later one with the same name gets ``NameConflict`` and writes
  nothing; when the owner goes, the next one takes over;
* desired entries whose deployment name has no owner are orphans and are deleted;
* a device has an actor (and a Device resource) only once it announced itself
  (device-info); heartbeats and reports of an unknown id cost a few fields, no actor;
* a device silent for longer than the retention is forgotten (:mod:`.retention`): its
  labels, heartbeat and reports leave memory, it stops being targeted (so its desired
  entries are deleted), its Device resource is marked stale, and its info, heartbeat
  and report keys are deleted if unchanged since (a compare-and-swap);
* two agent instances beating interleaved under one id are reported (:mod:`.duplicates`).

What it must never do: block, or send a Deployment actor deltas before its ``Activate``.
"""

from __future__ import annotations

import datetime
import heapq
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import pykka

from fleet.contracts import BUCKET_DESIRED_STATE, DeploymentName, DeviceId, desired_state_key
from fleet.errors import SpecError
from fleet.runtime.actorkit.failfast import SupervisedActor
from fleet.runtime.actorkit.index import ActorIndex
from fleet.runtime.actorkit.pool import ActorPool
from fleet.runtime.aiokit.loop import tell_when_done
from fleet.runtime.aiokit.timers import TimerPort
from fleet.runtime.kube.client import KubeObject
from fleet.runtime.nats.kv_publish import WriteResult

from . import messages as m
from .deployment import DeploymentActor
from .device import DeviceActor
from .duplicates import Change, DuplicateDetector
from .ports import DeploymentApiPort, KeyDeleterPort, KvWriterPort
from .retention import Forgotten, Retention
from .spec import DeploymentSpec, parse_spec

logger = logging.getLogger(__name__)


class _Record:
    __slots__ = ("active", "error", "key", "name", "obj", "ref", "spec")

    def __init__(self, key: m.DeploymentKey, ref: pykka.ActorRef[Any], obj: KubeObject) -> None:
        self.key = key
        self.ref = ref
        self.obj = obj
        self.spec: DeploymentSpec | None = None
        self.error: str | None = None
        self.name: DeploymentName | None = None
        self.active = False


def _age(obj: KubeObject) -> tuple[str, str, str]:
    return (obj.creation_timestamp, obj.namespace or "", obj.name)


class FleetIndex(SupervisedActor):
    def __init__(
        self,
        *,
        writer: KvWriterPort,
        api: DeploymentApiPort,
        timers: TimerPort,
        pool: ActorPool,
        mirror: pykka.ActorRef[Any],
        sources: Iterable[str],
        liveness_timeout: float,
        tick: float = 1.0,
        status_delay: float = 0.1,
        status_interval: float = 0.5,
        retention: float = 0.0,
        deleter: KeyDeleterPort | None = None,
    ) -> None:
        super().__init__()
        self._writer = writer
        self._deleter = deleter
        self._api = api
        self._timers = timers
        self._pool = pool
        self._mirror = mirror
        self._required = set(sources)
        self._synced_sources: set[str] = set()
        self.synced = False
        self._timeout = liveness_timeout
        self._tick = tick
        self._status_delay = status_delay
        self._status_interval = status_interval
        self._records: dict[m.DeploymentKey, _Record] = {}
        self._owners: dict[DeploymentName, m.DeploymentKey] = {}
        self._targeted: dict[m.DeploymentKey, set[DeviceId]] = {}
        self._desired: defaultdict[DeploymentName, dict[DeviceId, m.DesiredEntry]] = defaultdict(
            dict
        )
        self._reports: defaultdict[DeploymentName, dict[DeviceId, m.Report]] = defaultdict(dict)
        self._labels: dict[DeviceId, Mapping[str, str]] = {}
        self._beats: dict[DeviceId, float] = {}
        # (beat time, device) for every beat seen, oldest first: the liveness sweep pops
        # only beats older than the timeout instead of scanning the whole fleet each tick.
        self._expiring: list[tuple[float, DeviceId]] = []
        self._online: set[DeviceId] = set()
        self.devices: ActorIndex[DeviceId] = ActorIndex(name="devices")
        self._retention = Retention(
            retention=retention if deleter is not None else 0.0,
            quiet=liveness_timeout,
            grace=2 * liveness_timeout,
        )
        self._duplicates = DuplicateDetector(window=liveness_timeout)
        self._forget_retry: list[tuple[DeviceId, tuple[tuple[str, str, int], ...]]] = []
        self._forget_retry_at = 0.0
        self.forgotten = 0

    def on_stop(self) -> None:
        stopping = [record.ref.stop(block=False) for record in self._records.values()]
        for future in stopping:
            future.get(timeout=10.0)
        self.devices.stop_all(timeout=10.0)

    def on_receive(self, message: Any) -> Any:
        handler = _HANDLERS.get(type(message))
        if handler is None:
            logger.warning("fleet index: unexpected message %r", message)
            return None
        return handler(self, message)

    # -- Deployments -----------------------------------------------------------------------

    def _on_listed(self, msg: m.DeploymentsListed) -> None:
        present = {obj.key for obj in msg.objects}
        for key in list(self._records):
            if (msg.scope is None or key[0] == msg.scope) and key not in present:
                self._remove(key)
        for obj in sorted(msg.objects, key=_age):
            self._upsert(obj)

    def _on_event(self, msg: m.DeploymentEvent) -> None:
        if msg.type == "DELETED":
            self._remove(msg.obj.key)  # type: ignore[arg-type]
        else:
            self._upsert(msg.obj)

    def _upsert(self, obj: KubeObject) -> None:
        key: m.DeploymentKey = (obj.namespace or "", obj.name)
        record = self._records.get(key)
        if record is None:
            ref = DeploymentActor.start(
                key=key,
                writer=self._writer,
                api=self._api,
                timers=self._timers,
                status_delay=self._status_delay,
                status_interval=self._status_interval,
                index=self.actor_ref,
                synced=self.synced,
            )
            record = self._records[key] = _Record(key, ref, obj)
        old_selector = record.spec.selector if record.spec is not None else None
        record.obj = obj
        try:
            record.spec, record.error = parse_spec(name=obj.name, spec_json=obj.spec), None
            record.name = record.spec.name
        except Exception as exc:  # SpecError; anything else is a bug, never a dead index
            if not isinstance(exc, SpecError):
                logger.exception("Deployment %s/%s: parsing its spec failed", *key)
            record.spec, record.error = None, str(exc) or type(exc).__name__
            try:
                record.name = DeploymentName.try_new(obj.name)
            except ValueError:
                record.name = None
        if record.error is not None:
            logger.warning("Deployment %s/%s: invalid spec: %s", *key, record.error)
        owner = self._claim(record)
        record.ref.tell(
            m.Spec(
                obj=obj,
                spec=record.spec,
                error=record.error,
                conflict_with=None if owner == key else "/".join(owner) if owner else None,
            )
        )
        if self.synced and owner == key:
            if not record.active:
                self._activate(record)
            elif record.spec is not None and record.spec.selector != old_selector:
                self._retarget(record)

    def _claim(self, record: _Record) -> m.DeploymentKey | None:
        if record.name is None:
            return None
        owner = self._owners.setdefault(record.name, record.key)
        if owner != record.key:
            other = self._records.get(owner)
            if other is not None and not other.active and _age(record.obj) < _age(other.obj):
                # Not yet active (initial sync pending): the earlier-created one wins.
                self._owners[record.name] = record.key
                other.ref.tell(
                    m.Spec(obj=other.obj, spec=other.spec, error=other.error,
                           conflict_with="/".join(record.key))
                )  # fmt: skip
                return record.key
        return owner

    def _remove(self, key: m.DeploymentKey) -> None:
        record = self._records.pop(key, None)
        if record is None:
            return
        record.ref.stop(block=False)
        self._targeted.pop(key, None)
        name = record.name
        if name is None or self._owners.get(name) != key:
            return
        del self._owners[name]
        rivals = sorted(
            (r for r in self._records.values() if r.name == name), key=lambda r: _age(r.obj)
        )
        if rivals:
            heir = rivals[0]
            self._owners[name] = heir.key
            logger.info("deployment name %s passes from %s/%s to %s/%s", name, *key, *heir.key)
            heir.ref.tell(
                m.Spec(obj=heir.obj, spec=heir.spec, error=heir.error, conflict_with=None)
            )
            for rival in rivals[1:]:
                rival.ref.tell(
                    m.Spec(obj=rival.obj, spec=rival.spec, error=rival.error,
                           conflict_with="/".join(heir.key))
                )  # fmt: skip
            if self.synced:
                self._activate(heir)
        elif self.synced:
            self._delete_orphans(name, self._desired.get(name, {}).values())

    def _targets_of(self, record: _Record) -> set[DeviceId]:
        if record.spec is None:
            return set(self._targeted.get(record.key, ()))  # frozen while invalid
        selector = record.spec.selector
        return {d for d, labels in self._labels.items() if selector.matches(labels)}

    def _activate(self, record: _Record) -> None:
        assert record.name is not None
        targets = self._targets_of(record)
        self._targeted[record.key] = targets
        record.active = True
        record.ref.tell(
            m.Activate(
                desired=tuple(self._desired.get(record.name, {}).values()),
                reports=tuple(self._reports.get(record.name, {}).values()),
                targets=frozenset(targets),
                offline=frozenset(targets - self._online),
            )
        )

    def _retarget(self, record: _Record) -> None:
        targets = self._targets_of(record)
        self._targeted[record.key] = targets
        record.ref.tell(
            m.Retarget(targets=frozenset(targets), offline=frozenset(targets - self._online))
        )

    def _active_owner(self, name: DeploymentName) -> _Record | None:
        key = self._owners.get(name)
        record = self._records.get(key) if key is not None else None
        return record if record is not None and record.active else None

    def _delete_orphans(self, name: str, entries: Iterable[m.DesiredEntry]) -> None:
        live = [e for e in entries if e.value is not None]
        if not live:
            return
        logger.info("deleting %d orphaned desired-state entries of deployment %s", len(live), name)
        keys = [desired_state_key(e.device, e.deployment) for e in live]
        future = self._writer.delete_many(BUCKET_DESIRED_STATE, keys)

        def done(results: list[WriteResult]) -> m.DesiredWritten:
            errors = [r for r in results if not isinstance(r, int)]
            if errors:
                logger.warning(
                    "deleting %d orphaned desired-state entries of %s failed: %r",
                    len(errors), name, errors[0],
                )  # fmt: skip
            gone = [(e, r) for e, r in zip(live, results, strict=True) if isinstance(r, int)]
            return m.DesiredWritten(
                entries=tuple(
                    m.DesiredEntry(device=e.device, deployment=e.deployment, revision=r, value=None)
                    for e, r in gone
                )
            )

        tell_when_done(
            future,
            self.actor_ref,
            on_result=done,
            on_error=lambda exc: _orphans_failed(name, exc),
        )

    # -- bucket entries ----------------------------------------------------------------------

    def _on_desired(self, msg: m.DesiredSeen) -> None:
        by_name: defaultdict[DeploymentName, list[m.DesiredEntry]] = defaultdict(list)
        for entry in msg.entries:
            if entry.value is None:
                self._desired[entry.deployment].pop(entry.device, None)
            else:
                self._desired[entry.deployment][entry.device] = entry
            by_name[entry.deployment].append(entry)
        for name, entries in by_name.items():
            owner = self._active_owner(name)
            if owner is not None:
                owner.ref.tell(m.DesiredSeen(entries=tuple(entries)))
            elif self.synced and name not in self._owners:
                self._delete_orphans(name, entries)

    def _on_written(self, msg: m.DesiredWritten) -> None:
        for entry in msg.entries:
            if entry.value is None:
                self._desired[entry.deployment].pop(entry.device, None)
            else:
                self._desired[entry.deployment][entry.device] = entry

    def _on_reports(self, msg: m.ReportsSeen) -> None:
        by_name: defaultdict[DeploymentName, list[m.Report]] = defaultdict(list)
        now = time.time()
        retention = self._retention
        for report in msg.reports:
            device = report.device
            if report.phase is None:
                self._reports[report.deployment].pop(device, None)
                retention.report_key(device, report.deployment, 0)
            else:
                self._reports[report.deployment][device] = report
                if report.updated_at is not None:
                    retention.seen(device, report.updated_at.timestamp(), now=now)
                retention.report_key(device, report.deployment, report.revision)
            by_name[report.deployment].append(report)
            ref = self.devices.get(device)
            if ref is not None:
                ref.tell(m.DevicePhase(report=report))
        for name, reports in by_name.items():
            owner = self._active_owner(name)
            if owner is not None:
                owner.ref.tell(m.ReportsSeen(reports=tuple(reports)))

    def _on_infos(self, msg: m.InfosSeen) -> None:
        changed: list[DeviceId] = []
        now = time.time()
        for device, info, revision in msg.infos:
            old = self._labels.get(device)
            if info is None:
                self._retention.info_key(device, 0)
                ref = self.devices.get(device)
                if ref is not None:  # an unknown (or forgotten) id makes no actor to delete
                    ref.tell(m.DeviceInfoSeen(info=None))
                self._labels.pop(device, None)
            else:
                self._retention.seen(device, info.updated_at.timestamp(), now=now)
                self._retention.info_key(device, revision)
                self._device(device).tell(m.DeviceInfoSeen(info=info))
                self._labels[device] = info.labels
            if old != (info.labels if info is not None else None):
                changed.append(device)
        if self.synced and changed:
            self._retarget_devices(changed)

    def _retarget_devices(self, devices: list[DeviceId]) -> None:
        for key, targeted in self._targeted.items():
            record = self._records.get(key)
            if record is None or record.spec is None or not record.active:
                continue
            selector = record.spec.selector
            added: list[tuple[DeviceId, bool]] = []
            removed: list[DeviceId] = []
            for device in devices:
                labels = self._labels.get(device)
                match = labels is not None and selector.matches(labels)
                if match and device not in targeted:
                    targeted.add(device)
                    added.append((device, device in self._online))
                elif not match and device in targeted:
                    targeted.discard(device)
                    removed.append(device)
            if added or removed:
                record.ref.tell(m.TargetChanges(added=tuple(added), removed=tuple(removed)))

    def _on_beats(self, msg: m.BeatsSeen) -> None:
        now = time.time()
        back: list[DeviceId] = []
        for beat in msg.beats:
            device, at, when = beat.device, beat.at, beat.when
            if when is None:
                self._beats.pop(device, None)
                self._retention.beat_key(device, 0)
                if device in self._online:
                    heapq.heappush(self._expiring, (0.0, device))  # silent from now on
                continue
            self._beats[device] = at
            heapq.heappush(self._expiring, (at, device))
            self._retention.seen(device, at, now=now)
            self._retention.beat_key(device, beat.revision)
            if beat.instances:
                change = self._duplicates.beats(device, beat.instances, now=now)
                if change is not None:
                    self._on_duplicate(change)
            ref = self.devices.get(device)
            if ref is not None:
                ref.tell(m.DeviceBeat(at=when))
            if self.synced and device not in self._online and now - at <= self._timeout:
                self._online.add(device)
                back.append(device)
        if back:
            self._broadcast_liveness(online=back, offline=[])

    def _on_duplicate(self, change: Change) -> None:
        if change.instances is not None:
            logger.warning(
                "device %s: agent instances %s beat interleaved under one device id: two or "
                "more processes use it (a cloned disk or config?)",
                change.device,
                " and ".join(change.instances),
            )
        else:
            logger.info("device %s: one agent instance again", change.device)
        ref = self.devices.get(change.device)
        if ref is not None:
            ref.tell(m.DeviceDuplicate(instances=change.instances))

    def _on_tick(self, _msg: m.Tick) -> None:
        self._timers.tell_later(self.actor_ref, m.Tick(), delay=self._tick)
        now = time.time()
        gone: dict[DeviceId, None] = {}  # ordered, and a device once however many beats
        expiring = self._expiring
        while expiring and now - expiring[0][0] > self._timeout:
            at, device = heapq.heappop(expiring)
            if device in self._online and self._beats.get(device, 0.0) == at:  # no newer beat
                gone[device] = None
        if gone:
            self._online.difference_update(gone)
            self._broadcast_liveness(online=[], offline=list(gone))
        self._sweep(now)

    # -- retention ---------------------------------------------------------------------------

    def _sweep(self, now: float) -> None:
        forgotten = self._retention.expired(now=now)
        for old in forgotten:
            self._forget(old, now)
        if forgotten:
            self._retarget_devices([f.device for f in forgotten])
            logger.info(
                "forgot %d devices silent for more than %.0f s (e.g. %s, last heard from %s)",
                len(forgotten),
                self._retention.retention,
                forgotten[0].device,
                _when(forgotten[0].last_seen),
            )
        groups = [(f.device, f.keys) for f in forgotten if f.keys]
        if self._forget_retry and now >= self._forget_retry_at:
            groups += self._forget_retry
            self._forget_retry = []
        if groups and self._deleter is not None:
            tell_when_done(
                self._deleter.delete_unchanged([keys for _, keys in groups]),
                self.actor_ref,
                on_result=lambda results: _KeysDeleted(
                    groups=tuple(groups), results=tuple(results)
                ),
                on_error=lambda exc: _KeysDeleted(
                    groups=tuple(groups), results=tuple(f"failed: {exc!r}" for _ in groups)
                ),
            )

    def _forget(self, old: Forgotten, now: float) -> None:
        device = old.device
        self.forgotten += 1
        self._labels.pop(device, None)
        self._beats.pop(device, None)
        self._online.discard(device)
        for reports in self._reports.values():
            reports.pop(device, None)
        self._duplicates.drop(device)
        ref = self.devices.pop(device)
        if ref is not None:
            at = datetime.datetime.fromtimestamp(now, tz=datetime.UTC)
            ref.tell(m.DeviceForgotten(at=at))

    def _on_keys_deleted(self, msg: _KeysDeleted) -> None:
        failed = [g for g, r in zip(msg.groups, msg.results, strict=True) if r.startswith("fail")]
        changed = sum(1 for r in msg.results if r == "changed")
        if changed:
            logger.info("%d forgotten devices wrote again before their keys went: kept", changed)
        if failed:
            first = next(r for r in msg.results if r.startswith("fail"))
            logger.warning(
                "deleting the keys of %d forgotten devices failed (%s); retrying in 30 s",
                len(failed),
                first,
            )
            self._forget_retry.extend(failed)
            self._forget_retry_at = time.time() + 30.0

    def _broadcast_liveness(self, *, online: list[DeviceId], offline: list[DeviceId]) -> None:
        for devices, state in ((online, True), (offline, False)):
            for device in devices:
                ref = self.devices.get(device)
                if ref is not None:
                    ref.tell(m.DeviceOnline(online=state))
        for key, targeted in self._targeted.items():
            up = tuple(d for d in online if d in targeted)
            down = tuple(d for d in offline if d in targeted)
            record = self._records.get(key)
            if record is not None and (up or down):
                record.ref.tell(m.Liveness(online=up, offline=down))

    def _device(self, device: DeviceId) -> pykka.ActorRef[Any]:
        """The device's actor, started (and told what is known of it) on first need."""
        ref = self.devices.get(device)
        if ref is None:
            at = self._beats.get(device)
            ref = DeviceActor.start(
                pool=self._pool,
                device=device,
                mirror=self._mirror,
                beat=datetime.datetime.fromtimestamp(at, tz=datetime.UTC) if at else None,
                online=self.synced and device in self._online,
                reports=[r[device] for r in self._reports.values() if device in r],
                duplicate=self._duplicates.flagged(device),
            )
            self.devices.add(device, ref)
        return ref

    # -- sync ------------------------------------------------------------------------------

    def _on_synced(self, msg: m.SourceSynced) -> None:
        self._synced_sources.add(msg.source)
        logger.info("source %s synced", msg.source)
        if self.synced or not self._required <= self._synced_sources:
            return
        self.synced = True
        now = time.time()
        self._online = {d for d, at in self._beats.items() if now - at <= self._timeout}
        self._broadcast_devices_online()
        for name, key in self._owners.items():
            record = self._records[key]
            if record.name == name:
                self._activate(record)
        for record in self._records.values():
            record.ref.tell(m.Synced())  # a deleting non-owner may now release its finalizer
        for name, entries in list(self._desired.items()):
            if name not in self._owners:
                self._delete_orphans(name, entries.values())
        self._timers.tell_later(self.actor_ref, m.Tick(), delay=self._tick)
        logger.info(
            "initial sync done: %d deployments, %d devices, %d online",
            len(self._records),
            len(self._labels),
            len(self._online),
        )

    def _broadcast_devices_online(self) -> None:
        for device in self._online:
            ref = self.devices.get(device)
            if ref is not None:
                ref.tell(m.DeviceOnline(online=True))

    def _on_query(self, _msg: Query) -> dict[str, Any]:
        return {
            "synced": self.synced,
            "deployments": len(self._records),
            "devices": len(self._labels),
            "online": len(self._online),
            "heartbeats": len(self._beats),
            "device_actors": len(self.devices),
            "tracked": len(self._retention),
            "forgotten": self.forgotten,
        }


def _when(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC).isoformat(timespec="seconds")


class _KeysDeleted(m.Msg, frozen=True, kw_only=True):
    """What became of the keys of forgotten devices: "deleted", "changed", "failed: ..."."""

    groups: tuple[tuple[DeviceId, tuple[tuple[str, str, int], ...]], ...]
    results: tuple[str, ...]


def _orphans_failed(name: str, exc: BaseException) -> m.DesiredWritten:
    logger.warning("deleting orphaned desired-state entries of %s failed: %r", name, exc)
    return m.DesiredWritten(entries=())


class Query(m.Msg, frozen=True, kw_only=True):
    """Ask (from tests and the CLI only): a summary of what the index holds."""


_HANDLERS: dict[type, Any] = {
    m.DeploymentsListed: FleetIndex._on_listed,
    m.DeploymentEvent: FleetIndex._on_event,
    m.DesiredSeen: FleetIndex._on_desired,
    m.DesiredWritten: FleetIndex._on_written,
    m.ReportsSeen: FleetIndex._on_reports,
    m.InfosSeen: FleetIndex._on_infos,
    m.BeatsSeen: FleetIndex._on_beats,
    m.Tick: FleetIndex._on_tick,
    m.SourceSynced: FleetIndex._on_synced,
    Query: FleetIndex._on_query,
    _KeysDeleted: FleetIndex._on_keys_deleted,
}
