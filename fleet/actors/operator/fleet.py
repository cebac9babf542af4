"""The fleet index: who owns each name, who matches what, and where each event must go.

Why it exists: targeting is a join between every device's labels and every Deployment's
selector, so the labels live here (:mod:`.targeting`), with the Deployment records and
the owner of each name (:mod:`.ownership`). Everything else it routes to its one keeper:
a device's heartbeats, info and reports to its device actor (:mod:`.roster`: those of an
id that never announced itself wait there), a name's desired entries to the Deployment
actor that owns it (until then, and when that actor retires, in :mod:`.unclaimed`).

Rules it enforces:

* nothing is targeted, written or deleted before every source has synced (the
  Deployment list and the four buckets; with enrollment, the Device resources' approved
  labels too), so a restart neither drops nor duplicates;
* with enrollment, a device is targeted by its approved labels, not by those it
  reports (:mod:`.approvals`);
* desired entries whose deployment name has no owner are orphans and are deleted;
* with shards (:mod:`.shards`), another shard's Deployments and desired entries are as
  if absent, and only a device's own shard writes its Device resource and Events;
* a device has an actor (and a Device resource) only once it announced itself;
* each target's runtimes (``DeviceInfo.runnable``) go to its Deployments with its
  labels; a change of runtimes alone reaches them as a relabel (:mod:`.runnable`);
* a device silent for longer than the retention is forgotten: its labels leave, so it
  stops being targeted (its desired entries are deleted), its actor marks its Device
  resource stale and stops, and its keys are deleted if unchanged since.

What it must never do: block, or send a Deployment actor deltas before its ``Activate``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict
from collections.abc import Container, Iterable
from typing import Any

import pykka

from fleet.contracts import DeploymentName, DeviceId, DeviceInfo
from fleet.runtime.actorkit.coarse_timers import CoarseTimers
from fleet.runtime.actorkit.failfast import SupervisedActor
from fleet.runtime.actorkit.pool import ActorPool
from fleet.runtime.aiokit.timers import TimerPort
from fleet.runtime.kube.client import KubeObject

from . import messages as m
from .approvals import LabelApprovals
from .deployment import DeploymentActor
from .device import DeviceActor
from .file_sources import FileSourcesPort
from .forgetting import KeysDeleted
from .ownership import Ownership, Record, age, key_of
from .ports import (
    NO_EVENTS,
    NO_METRICS,
    DeploymentApiPort,
    EventsPort,
    KeyDeleterPort,
    KvWriterPort,
    MetricsPort,
    TellReplies,
)
from .roster import DeviceRoster
from .shards import WHOLE, Shard
from .spec import read_spec
from .targeting import Targeting
from .unclaimed import Unclaimed
from .writes import DesiredWriter

logger = logging.getLogger(__name__)


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
        enforce_approved_labels: bool = False,
        metrics: MetricsPort = NO_METRICS,
        events: EventsPort = NO_EVENTS,
        privileged_namespaces: frozenset[str] | None = None,
        file_sources: FileSourcesPort | None = None,
        shard: Shard = WHOLE,
    ) -> None:
        super().__init__()
        self._shard = shard
        self._metrics = metrics
        self._labels = LabelApprovals(enforced=enforce_approved_labels)
        self._privileged = privileged_namespaces  # None: Deployments anywhere may be granted
        self._timers = timers
        self._required = set(sources)
        self._synced_sources: set[str] = set()
        self.synced = False
        self._tick = tick
        self._start_deployment = functools.partial(
            DeploymentActor.start, writer=writer, api=api, timers=timers,
            status_delay=status_delay, status_interval=status_interval,
            register_delay=liveness_timeout,
            index=self.actor_ref, metrics=metrics, events=events, file_sources=file_sources,
        )  # fmt: skip
        replies, clock = TellReplies(self.actor_ref), CoarseTimers()
        start_device = functools.partial(
            DeviceActor.start, pool=pool, timers=clock,
            liveness_timeout=liveness_timeout, metrics=metrics,
        )  # fmt: skip

        def start_owned(device: DeviceId, beat: Any, reports: Any, duplicate: Any) -> Any:
            # Every shard keeps every device's liveness and reports (its aggregates need
            # them); only the device's own shard writes its Device resource and Events.
            owned = shard.owns_device(device)
            return start_device(
                device=device, beat=beat, reports=reports, duplicate=duplicate,
                mirror=mirror if owned else None, events=events if owned else NO_EVENTS,
            )  # fmt: skip

        self._ownership = Ownership()
        self._refs: dict[m.DeploymentKey, pykka.ActorRef[Any]] = {}
        self._targeting = Targeting()
        # device -> the score types it runs; equal tuples shared (a fleet has a few kinds)
        self._runtimes: dict[DeviceId, tuple[str, ...]] = {}
        self._runtime_kinds: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._unclaimed = Unclaimed(DesiredWriter(writer=writer, replies=replies))
        self.roster = DeviceRoster(
            start=start_owned,
            liveness_timeout=liveness_timeout, retention=retention, deleter=deleter,
            replies=replies, clock=clock, owns_device=shard.owns_device,
        )  # fmt: skip

    def on_stop(self) -> None:
        refs = [*self._refs.values(), *self._unclaimed.retiring_refs()]
        stopping = [ref.stop(block=False) for ref in refs]
        for future in stopping:
            future.get(timeout=10.0)
        self.roster.actors.stop_all(timeout=10.0)

    def on_receive(self, message: Any) -> Any:
        handler = _HANDLERS.get(type(message))
        if handler is None:
            logger.warning("fleet index: unexpected message %r", message)
            return None
        return handler(self, message)

    def _on_listed(self, msg: m.DeploymentsListed) -> None:
        owns = self._shard.owns_deployment  # another shard's Deployments: as if absent
        objects = [obj for obj in msg.objects if owns(obj.name)]
        present = {key_of(obj) for obj in objects}
        for record in self._ownership:
            key = record.key
            if (msg.scope is None or key[0] == msg.scope) and key not in present:
                self._remove(key)
        for obj in sorted(objects, key=age):
            self._upsert(obj)

    def _on_event(self, msg: m.DeploymentEvent) -> None:
        if not self._shard.owns_deployment(msg.obj.name):
            return  # another shard's
        if msg.type == "DELETED":
            self._remove(key_of(msg.obj))
        else:
            self._upsert(msg.obj)

    def _upsert(self, obj: KubeObject) -> None:
        where = f"{obj.namespace}/{obj.name}"
        forbidden = self._privileged is not None and obj.namespace not in self._privileged
        reading = read_spec(
            name=obj.name, spec_json=obj.spec, where=where,
            privileges_forbidden_in=obj.namespace if forbidden else None,
        )  # fmt: skip
        upserted = self._ownership.upsert(obj, reading)
        record = upserted.record
        if upserted.created:
            self._refs[record.key] = self._start_deployment(key=record.key, synced=self.synced)
        self._tell_specs(upserted.notices)
        if self.synced and upserted.owner == record.key:
            if not record.active:
                self._activate(record)
            elif upserted.selector_changed:
                self._retarget(record)

    def _tell_specs(self, notices: Iterable[tuple[Record, str | None]]) -> None:
        for r, conflict in notices:
            spec = m.Spec(obj=r.obj, spec=r.spec, error=r.error, conflict_with=conflict,
                          name=r.name)  # fmt: skip
            self._refs[r.key].tell(spec)

    def _remove(self, key: m.DeploymentKey) -> None:
        removed = self._ownership.remove(key)
        if removed is None:
            return
        record, ref = removed.record, self._refs.pop(key)
        self._targeting.drop(key)
        if record.active and record.name is not None:
            self._unclaimed.retiring(record.name, ref)
            ref.tell(m.Retire())  # it hands its entries back (Released), then stops
        else:
            ref.stop(block=False)
        self._tell_specs(removed.notices)
        if removed.heir is not None:
            logger.info("deployment name %s passes from %s/%s to %s/%s", record.name, *key,
                        *removed.heir.key)  # fmt: skip
            if self.synced:
                self._activate(removed.heir)
        elif removed.owned and self.synced and record.name is not None:
            self._unclaimed.delete_orphans(record.name)

    def _activate(self, record: Record) -> None:
        name = record.name
        assert name is not None
        if self._unclaimed.awaiting(name):
            return  # when its entries are back (Released)
        selector = record.spec.selector if record.spec is not None else None
        targets = self._targeting.target(record.key, selector)
        record.active = True
        activate = m.Activate(desired=self._unclaimed.take(name), targets=self._refs_of(targets),
                              labels=self._labels_of(targets),
                              runtimes=self._runtimes_of(targets))  # fmt: skip
        self._refs[record.key].tell(activate)

    def _retarget(self, record: Record) -> None:
        assert record.spec is not None
        targets = self._targeting.target(record.key, record.spec.selector)
        self._refs[record.key].tell(
            m.Retarget(targets=self._refs_of(targets), labels=self._labels_of(targets),
                       runtimes=self._runtimes_of(targets))
        )  # fmt: skip

    def _refs_of(self, devices: Iterable[DeviceId]) -> tuple[tuple[DeviceId, Any], ...]:
        get = self.roster.actors.get
        return tuple((d, ref) for d in devices if (ref := get(d)) is not None)

    def _labels_of(self, devices: Iterable[DeviceId]) -> dict[DeviceId, Any]:
        """The devices' labels (immutable mappings, shared, never copied)."""
        get = self._targeting.labels
        return {d: labels for d in devices if (labels := get(d)) is not None}

    def _runtimes_of(self, devices: Iterable[DeviceId]) -> dict[DeviceId, tuple[str, ...]]:
        """The devices' runtimes (those known: a targeted device has announced itself)."""
        get = self._runtimes.get
        return {d: runtimes for d in devices if (runtimes := get(d)) is not None}

    def _set_runtimes(self, device: DeviceId, info: DeviceInfo | None) -> bool:
        """Record what ``device``'s info (None: gone) says it runs; whether it changed."""
        old = self._runtimes.get(device)
        if info is None:
            self._runtimes.pop(device, None)
            return old is not None
        runnable = info.runnable
        kinds = self._runtime_kinds
        runtimes = kinds.setdefault(runnable, runnable) if len(kinds) < 256 else runnable
        self._runtimes[device] = runtimes
        return old != runtimes

    def _on_released(self, msg: m.Released) -> None:
        self._unclaimed.returned(msg.name, msg.entries)
        owner = self._ownership.owner(msg.name)
        if owner is not None:
            if self.synced and not owner.active:
                self._activate(owner)
        elif self.synced:
            self._unclaimed.delete_orphans(msg.name)

    def _on_orphans_deleted(self, msg: m.OrphansDeleted) -> None:
        self._unclaimed.deleted(msg)

    def _on_desired(self, msg: m.DesiredSeen) -> None:
        by_name: defaultdict[DeploymentName, list[m.DesiredEntry]] = defaultdict(list)
        for entry in msg.entries:
            by_name[entry.deployment].append(entry)
        for name, entries in by_name.items():
            if not self._shard.owns_deployment(name):
                continue  # another shard's entries: neither kept nor orphans here
            owner = self._ownership.active_owner(name)
            if owner is not None:
                self._refs[owner.key].tell(m.DesiredSeen(entries=tuple(entries)))
                continue
            self._unclaimed.add(entries)
            awaiting = self._unclaimed.awaiting(name)
            if self.synced and self._ownership.owner(name) is None and not awaiting:
                self._unclaimed.delete_orphans(name)

    def _on_reports(self, msg: m.ReportsSeen) -> None:
        # Each to its device actor. The owner of its name checks it for writes by
        # others too, unless it targets the device: then the device actor, which knows
        # the revision to expect, passes on only those worth a check.
        now, route = time.time(), self.roster.report
        owners: dict[DeploymentName, tuple[pykka.ActorRef[Any], Container[DeviceId]] | None] = {}
        others: defaultdict[DeploymentName, list[m.Report]] = defaultdict(list)
        for report in msg.reports:
            ref, name = route(report, now=now), report.deployment
            if name not in owners:
                owners[name] = self._owner_of(name)
            owner = owners[name]
            if owner is not None and (ref is None or report.device not in owner[1]):
                others[name].append(report)
        for name, reports in others.items():
            owner = owners[name]
            assert owner is not None
            owner[0].tell(m.ReportsSeen(reports=tuple(reports)))

    def _owner_of(self, name: DeploymentName) -> tuple[Any, Container[DeviceId]] | None:
        """The active owner of ``name``: its actor and the devices it targets."""
        owner = self._ownership.active_owner(name)
        return (
            None if owner is None else (self._refs[owner.key], self._targeting.targeted(owner.key))
        )

    def _on_infos(self, msg: m.InfosSeen) -> None:
        changed: list[DeviceId] = []
        now = time.time()
        for device, info, revision in msg.infos:
            self.roster.info(device, info, revision, now=now)
            labels = self._labels.report(device, info.labels if info is not None else None)
            runtimes_changed = self._set_runtimes(device, info)
            if self._targeting.set_labels(device, labels) or runtimes_changed:
                changed.append(device)
        if self.synced and changed:
            self._retarget_devices(changed)

    def _retarget_devices(self, devices: list[DeviceId]) -> None:
        selectors = self._ownership.selectors()
        changed = self._targeting.retarget(devices, selectors)
        for key in selectors:
            changes, targeted = changed.get(key), self._targeting.targeted(key)
            added = changes.added if changes is not None else []
            # kept with other labels: a rollout's batch selectors may see them otherwise
            relabelled = [d for d in devices if d in targeted and d not in added]
            if changes is None and not relabelled:
                continue
            self._refs[key].tell(
                m.TargetChanges(
                    added=self._refs_of(added),
                    removed=tuple(changes.removed) if changes is not None else (),
                    labels=self._labels_of([*added, *relabelled]),
                    relabelled=tuple(relabelled),
                    runtimes=self._runtimes_of([*added, *relabelled]),
                )
            )

    def _on_approved(self, msg: m.LabelsApproved) -> None:
        touched = self._labels.approve(msg.approvals, listed=msg.listed)
        changed = [d for d in touched if self._targeting.set_labels(d, self._labels.targeted_by(d))]
        if self.synced and changed:
            self._retarget_devices(changed)
        if msg.listed and m.APPROVED_LABELS not in self._synced_sources:
            self._on_synced(m.SourceSynced(source=m.APPROVED_LABELS))

    def _on_beats(self, msg: m.BeatsSeen) -> None:
        self.roster.beats(msg.beats, now=time.time())

    def _on_tick(self, _msg: m.Tick) -> None:
        self._timers.tell_later(self.actor_ref, m.Tick(), delay=self._tick)
        forgotten = self.roster.tick(now=time.time())
        self._metrics.devices_known(len(self.roster.actors))
        agents = self.roster.agents
        self._metrics.agent_figures(agents.totals, reporting=agents.reporting)
        for old in forgotten:
            self._targeting.set_labels(old.device, self._labels.report(old.device, None))
            self._set_runtimes(old.device, None)
        if forgotten:
            self._retarget_devices([f.device for f in forgotten])

    def _on_keys_deleted(self, msg: KeysDeleted) -> None:
        self.roster.keys.done(msg, now=time.time())

    def _on_synced(self, msg: m.SourceSynced) -> None:
        self._synced_sources.add(msg.source)
        logger.info("source %s synced", msg.source)
        if self.synced or not self._required <= self._synced_sources:
            return
        self.synced = True
        # said before any actor hears of it: what they do next comes after, in the log too
        logger.info("initial sync done: %d deployments, %d devices",
                    len(self._ownership), len(self._targeting))  # fmt: skip
        for record in self._ownership.owners():
            self._activate(record)
        for ref in self._refs.values():
            ref.tell(m.Synced())  # a deleting non-owner may now release its finalizer
        for name in self._unclaimed.names():
            if self._ownership.owner(name) is None:
                self._unclaimed.delete_orphans(name)
        self._timers.tell_later(self.actor_ref, m.Tick(), delay=self._tick)
        self._metrics.devices_known(len(self.roster.actors))
        self._metrics.synced()

    def _on_query(self, _msg: Query) -> dict[str, Any]:
        return {
            "synced": self.synced,
            "deployments": len(self._ownership),
            "devices": len(self._targeting),
            **self.roster.summary(),
        }


class Query(m.Msg, frozen=True, kw_only=True):
    """Ask (from tests and the CLI only): a summary of what the index holds."""


_HANDLERS: dict[type, Any] = {
    m.DeploymentsListed: FleetIndex._on_listed,
    m.DeploymentEvent: FleetIndex._on_event,
    m.Released: FleetIndex._on_released,
    m.OrphansDeleted: FleetIndex._on_orphans_deleted,
    m.DesiredSeen: FleetIndex._on_desired,
    m.ReportsSeen: FleetIndex._on_reports,
    m.InfosSeen: FleetIndex._on_infos,
    m.LabelsApproved: FleetIndex._on_approved,
    m.BeatsSeen: FleetIndex._on_beats,
    m.Tick: FleetIndex._on_tick,
    m.SourceSynced: FleetIndex._on_synced,
    Query: FleetIndex._on_query,
    KeysDeleted: FleetIndex._on_keys_deleted,
}
