"""One actor per Deployment resource: its targets, its name's desired entries, its status.

Why it exists: a Deployment owns the desired-state entries ``<device>.<name>`` of the
devices it targets, and this actor is their only keeper once the fleet index handed them
over (``Activate``). It composes plain classes: the entries and the diff with foreign-write
repair (:mod:`.desired`), their writes (:mod:`.writes`), its targets and what each was
told (:mod:`.registrations`), the finalizer rules (:mod:`.finalizer`), the status
throttle (:mod:`.throttle`), each target's rendering of a templated score
(:mod:`.rendering`) and whether each target runs the score's type (:mod:`.runnable`).
Its aggregate counts the class each targeted device actor decides for it: the device
actor owns the device's reports and liveness, this actor tells it which revision to
expect (``Expect``) and drains the answers in batches (:mod:`.batching`).

States: inactive (waiting for the fleet index's initial sync, or another Deployment owns
the name: ``conflict_with``), active, deleting (entries are deleted, then the finalizer is
released), retired (the resource is gone: its entries go back to the index, ``Released``).
An invalid spec freezes it: nothing is written or deleted, the condition says why.

What it must never do: block (every write and patch is a future that comes back as a
message), or write while another write to the same device is in flight.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
import pykka

from fleet.contracts import DeploymentName, DeviceId
from fleet.runtime.actorkit.batched import Batched
from fleet.runtime.actorkit.failfast import SupervisedActor
from fleet.runtime.aiokit.timers import TimerPort
from fleet.runtime.kube.client import KubeObject

from . import messages as m
from .desired import DesiredBook, Want
from .events import DeploymentEvents
from .file_sources import FileSourcesPort, may_reference, references, resolver
from .finalizer import FinalizerRequests, is_deleting, may_release, needs_finalizer
from .ports import (
    NO_EVENTS,
    NO_METRICS,
    DeploymentApiPort,
    EventsPort,
    KvWriterPort,
    MetricsPort,
    TellReplies,
)
from .registrations import Registrations
from .rendering import Renderer
from .revisions import RevisionKeeper
from .runnable import Runnability
from .spec import DeploymentSpec
from .status import SETTLED, Aggregate, deployment_status
from .throttle import StatusPatches
from .writes import DesiredWriter

logger = logging.getLogger(__name__)


class DeploymentActor(SupervisedActor):
    def __init__(
        self,
        *,
        key: m.DeploymentKey,
        writer: KvWriterPort,
        api: DeploymentApiPort,
        timers: TimerPort,
        status_delay: float = 0.1,
        status_interval: float = 0.5,
        retry_delay: float = 1.0,
        register_delay: float = 1.0,
        index: pykka.ActorRef[Any] | None = None,
        synced: bool = False,
        metrics: MetricsPort = NO_METRICS,
        events: EventsPort = NO_EVENTS,
        file_sources: FileSourcesPort | None = None,
    ) -> None:
        super().__init__()
        self.key = key
        self._files = file_sources  # ConfigMaps, Secrets, device keys (files, :mod:`.file_sources`)
        self._metrics = metrics
        self._events = DeploymentEvents(events)  # Ready, NotReady, DevicesFailed...
        # The fleet index has read every source (the Deployment list, the four buckets):
        # only then is it known which record owns the name and which entries exist.
        self._synced = synced
        self._index = index
        self._api = api
        self._timers = timers
        self._retry_delay = retry_delay
        self._replies = TellReplies(self.actor_ref)
        # What device actors answer to Expect: values, drained in batches.
        self._classes: Batched[m.Classified | m.Reported] = Batched(
            self.actor_ref, m.ClassesQueued()
        )
        self._writes = DesiredWriter(writer=writer, replies=self._replies)
        self._obj: KubeObject | None = None
        self._name: DeploymentName | None = None  # None: not a deployment name
        self._spec: DeploymentSpec | None = None
        self._error: str | None = None
        self._conflict_with: str | None = None
        self._active = False
        self._retired = False
        self._targets = Registrations(timers=timers, owner=self.actor_ref, late=register_delay)
        self._book = DesiredBook()
        self._render = Renderer(  # each target's value of a templated score
            resolver(file_sources, key[0]) if file_sources is not None else None
        )
        self._runnable = Runnability()  # which targets run the score's type
        self._agg = Aggregate()
        self._finalizer = FinalizerRequests(key, api=api, replies=self._replies)
        self._status = StatusPatches(
            key, api=api, replies=self._replies, timers=timers, owner=self.actor_ref,
            delay=status_delay, interval=status_interval, lag=metrics.status_lag,
        )  # fmt: skip
        self._retry_armed = False
        self._revisions = RevisionKeeper(
            key, api=api, replies=self._replies, timers=timers, owner=self.actor_ref,
            retry_delay=retry_delay,
        )  # fmt: skip

    def on_stop(self) -> None:
        self._metrics.deployment_gone(self.key, owner=self.actor_urn)
        if self._files is not None:
            self._files.need(self.actor_urn, self.key[0], set(), _nothing)

    def on_receive(self, message: Any) -> Any:
        if self._retired:
            return None  # its entries are with the index now; it stops after this
        handler = _HANDLERS.get(type(message))
        if handler is None:
            logger.warning("deployment %s/%s: unexpected message %r", *self.key, message)
            return None
        handler(self, message)
        if not isinstance(message, m.Flush | m.PatchDone) and self._obj is not None:
            self._status.changed()
        return None

    @property
    def _desired(self) -> bytes | None:
        return self._spec.desired if self._spec is not None else None

    def _on_spec(self, msg: m.Spec) -> None:
        old = self._desired
        self._events.seed(msg.obj)  # what its status said before this actor
        self._obj, self._spec, self._error = msg.obj, msg.spec, msg.error
        self._name = msg.spec.name if msg.spec is not None else msg.name
        self._conflict_with = msg.conflict_with
        if msg.spec is not None:
            self._need_files(msg.spec.desired)
            self._render.seed(msg.spec.template, msg.spec.desired)
            self._runnable.seed(msg.spec.desired)
        touched = self._revisions.spec(msg.obj, msg.spec)
        if msg.spec is not None and msg.spec.desired != old:
            touched = list(self._targets)
        self._touch(touched)
        if self._revisions.engine is not None:
            self._step()  # the pause and approval annotations may have changed
        if is_deleting(msg.obj):
            self._book.touch_all()
        elif needs_finalizer(msg.obj):
            self._finalizer.request(self._obj, present=True)
        self._reconcile()

    def _need_files(self, desired: bytes) -> None:
        """Ask for the ConfigMaps and Secrets the score's files name (none: none)."""
        if self._files is None:
            return
        refs: set[tuple[Any, str]] = set()
        if may_reference(desired):
            refs = set(references(msgspec.json.decode(desired)))
        me = self.actor_ref
        self._files.need(
            self.actor_urn,
            self.key[0],
            refs,
            lambda devices: me.tell(m.FilesChanged(devices=devices)),
        )

    def _on_files_changed(self, msg: m.FilesChanged) -> None:
        if msg.devices is None:
            self._render.invalidate()
            self._touch(list(self._targets))
        else:  # some devices' keys: only their entries are sealed again
            devices = [t for t in self._targets if t in msg.devices]  # no id made from input
            self._render.invalidate(devices)
            self._touch(devices)
        self._step()
        self._reconcile()

    def _on_synced(self, _msg: m.Synced) -> None:
        self._synced = True
        self._reconcile()

    def _on_activate(self, msg: m.Activate) -> None:
        self._active = self._synced = True
        for entry in msg.desired:
            self._book.observe(entry)
        self._book.touch_all()
        self._agg.clear()
        self._render.targets(msg.labels)
        self._runnable.targets(msg.runtimes)
        self._revisions.targets(msg.labels)
        self._add(msg.targets, first=True)
        self._step()
        self._reconcile()  # the writes first, then the device actors
        self._register_idle()

    def _on_desired(self, msg: m.DesiredSeen) -> None:
        for entry in msg.entries:
            self._book.observe(entry)
        self._book.touch(e.device for e in msg.entries)
        self._expect(self._targets.registered(e.device for e in msg.entries))
        self._reconcile()

    def _on_reports(self, msg: m.ReportsSeen) -> None:
        # Reports of devices it does not target (those it does, their device actors
        # check), checked for writes by others and never kept.
        reported = ((r.device, r.desired_revision) for r in msg.reports if r.phase is not None)
        self._read(self._book.suspect(reported))

    def _on_targets(self, msg: m.TargetChanges) -> None:
        self._revisions.targets(msg.labels, removed=msg.removed)
        rendered = self._render.targets(msg.labels, removed=msg.removed)
        runs = self._runnable.targets(msg.runtimes, removed=msg.removed)
        self._add(msg.added, first=False)
        self._remove(msg.removed)
        self._book.touch(msg.relabelled)
        if msg.relabelled:  # their values may have changed, or what they run
            relabelled = set(msg.relabelled)
            changed = set(rendered) if self._render.templated else set()
            changed.update(runs)
            self._touch([d for d in changed if d in relabelled])
        self._step()
        self._reconcile()
        self._register_idle()

    def _on_retarget(self, msg: m.Retarget) -> None:
        new = dict(msg.targets)
        gone = [d for d in self._targets if d not in new]
        self._revisions.targets(msg.labels, removed=gone)
        rendered = self._render.targets(msg.labels, removed=gone)
        runs = self._runnable.targets(msg.runtimes, removed=gone)
        self._remove(gone)
        self._add(msg.targets, first=False)
        if self._revisions.engine is not None:
            self._book.touch(new)  # relabelled targets may be in other batches now
        if self._render.templated:
            self._touch(rendered)  # their values may have changed with their labels
        self._touch(runs)  # what they run may have changed
        self._step()
        self._reconcile()
        self._register_idle()

    def _add(self, targets: Iterable[tuple[DeviceId, m.DeviceRef]], *, first: bool) -> None:
        added = self._targets.add(targets, first=first)
        for device in added:
            self._agg.set(device, "pending")  # until its device actor answers
        self._book.touch(added)

    def _remove(self, devices: Iterable[DeviceId]) -> None:
        removed = self._targets.remove(devices, deployment=self._name, reply=self._classes)
        for device in removed:
            self._agg.remove(device)
        self._book.touch(removed)

    def _register_idle(self) -> None:
        """Register the new targets that have no write in flight: nothing to wait for."""
        busy = self._book.busy
        self._expect([d for d in self._targets.unregistered() if not busy(d)])

    def _on_register_late(self, _msg: m.RegisterLate) -> None:
        self._expect(self._targets.late())  # writes stall: register without a revision

    def _on_retire(self, _msg: m.Retire) -> None:
        self._remove(list(self._targets))
        name = self._name
        if name is not None and self._index is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                self._index.tell(m.Released(name=name, entries=self._book.release(name)))
        self._retired = True
        self.stop()

    def _expect(self, devices: Iterable[DeviceId]) -> None:
        name = self._name
        if name is not None:
            self._targets.expect(devices, deployment=name, reply=self._classes,
                                 revision=self._expected())  # fmt: skip

    def _expected(self) -> Callable[[DeviceId], int | None]:
        """The revision of the entry each target should report now: its entry's, if it
        holds the value the target should have (the spec's, or the rollout's for it)."""
        desired, current = self._desired, self._book.current
        want, value = self._want(), self._book.value
        if want is None:
            return lambda device: current(device, desired)
        return lambda device: current(device, want(device, value(device)))

    def _want(self) -> Want | None:
        """Each target's desired value, given its entry (None: the spec's bytes for every
        target): the rollout's rule, with each revision rendered for the device when its
        score has templates (:mod:`.rendering`), and None for a target that does not run
        the value's type (:mod:`.runnable`)."""
        return self._runnable.gate(self._rendered_want(), self._desired or b"")

    def _rendered_want(self) -> Want | None:
        want, render = self._revisions.want, self._render
        if want is None:
            if not render.templated:
                return None
            desired, value = self._desired, render.value
            return lambda device, _entry: value(device, desired)
        engine = self._revisions.engine
        revisions = (engine.new, engine.stable) if engine is not None else ()
        return render.wrap(want, revisions=revisions)

    def _touch(self, devices: list[DeviceId]) -> None:
        """Their desired value may have changed: plan them again, and tell their device
        actors what to expect."""
        if devices:
            self._book.touch(devices)
            self._expect(self._targets.registered(devices))

    def _step(self) -> None:
        """Let the rollout (if any) admit, advance, halt or complete."""
        if not self._active:
            return  # its targets are not known yet: an empty fleet would pass every batch
        self._touch(self._revisions.step(
            class_of=self._agg.get, updated=self._updated(), now=time.monotonic()
        ))  # fmt: skip

    def _updated(self) -> Callable[[DeviceId], bool]:
        """Whether a device's entry is written and holds the rollout's new score."""
        engine, holds = self._revisions.engine, self._book.holds
        new = engine.new if engine is not None else b""
        if engine is None or not self._render.has_templates(new):
            return lambda device: holds(device, new)
        value = self._render.value

        def updated(device: DeviceId) -> bool:
            rendered = value(device, new)
            return rendered is not None and holds(device, rendered)

        return updated

    def _on_classes(self, _msg: m.ClassesQueued) -> None:
        rollout = self._revisions.engine is not None
        expected = self._expected() if rollout else None
        reported = self._targets.answers(self._classes.take(), self._agg, expected)
        if reported:
            self._read(self._book.suspect(reported))
        if rollout:
            self._step()
            self._reconcile()

    def _on_revisions(self, msg: m.RevisionsLoaded) -> None:
        self._touch(self._revisions.loaded(msg))
        self._step()
        self._reconcile()

    def _on_revision_created(self, msg: m.RevisionCreated) -> None:
        self._touch(self._revisions.created(msg))
        self._step()
        self._reconcile()

    def _on_outcome(self, msg: m.OutcomeRecorded) -> None:
        self._touch(self._revisions.recorded(msg))
        self._step()
        self._reconcile()

    def _on_rollout_tick(self, _msg: m.RolloutTick) -> None:
        self._step()
        self._reconcile()

    def _reconcile(self) -> None:
        obj = self._obj
        if not self._active or self._conflict_with is not None:
            # Not the owner (or not yet known to be): it has no entries of its own.
            if may_release(obj, synced=self._synced, owner=False, entries=0, writing=0):
                self._finalizer.request(self._obj, present=False)
            return
        deleting = is_deleting(obj)
        name = self._name
        if (self._spec is None and not deleting) or name is None:
            return  # invalid spec: frozen, nothing written or deleted
        desired, want, targets = self._desired or b"", self._want(), self._targets.targets
        if want is not None and not deleting:
            each = self._book.plan_each(targets=targets, want=want)
            for value, devices in each.puts.items():
                self._writes.put(name, devices, value)
            deletes = each.deletes
        else:
            plan = self._book.plan(targets=targets, desired=desired, deleting=deleting)
            if plan.puts:
                self._writes.put(name, plan.puts, desired)
            deletes = plan.deletes
        if deletes:
            self._writes.delete(name, deletes)
        book = self._book
        if may_release(obj, synced=True, owner=True, entries=len(book), writing=book.writing):
            self._finalizer.request(self._obj, present=False)

    def _on_writes_done(self, msg: m.WritesDone) -> None:
        self._targets.progressed()
        if self._revisions.engine is not None:
            self._unsettle(d for d, _, revision in msg.puts if revision is not None)
        if self._book.written(msg.puts, msg.deletes):
            logger.warning(
                "deployment %s/%s: desired-state writes failed (%s); retrying in %.1fs",
                *self.key, msg.error, self._retry_delay,
            )  # fmt: skip
            self._arm_retry()
        self._expect(d for d, _, _ in msg.puts)  # written (or failed: then with none yet)
        done = [d for d, _, _ in msg.puts] + [d for d, _ in msg.deletes]
        self._read(self._book.settled(done))  # reports that came meanwhile
        if self._revisions.engine is not None:
            self._step()
        self._reconcile()

    def _unsettle(self, devices: Iterable[DeviceId]) -> None:
        """Their entries changed: whatever they ran before, they run nothing of the new
        one yet. Their device actors' answers to the new ``Expect`` come later; until
        then a rollout must not count their old class against the new entry."""
        agg = self._agg
        for device in devices:
            if agg.get(device) in SETTLED:
                agg.set(device, "pending")

    def _read(self, devices: list[DeviceId]) -> None:
        name = self._name
        if devices and name is not None:
            self._writes.read(name, devices)

    def _on_verified(self, msg: m.Verified) -> None:
        changed = self._book.verified(msg.entries, where="/".join(self.key))
        if msg.error is not None:
            logger.warning(
                "deployment %s/%s: re-reading desired-state entries failed (%s); retrying in %.1fs",
                *self.key, msg.error, self._retry_delay,
            )  # fmt: skip
            self._arm_retry()
        self._expect(self._targets.registered(changed))
        self._read(self._book.settled(d for d, _, _ in msg.entries))
        self._reconcile()

    def _arm_retry(self) -> None:
        if not self._retry_armed:
            self._retry_armed = True
            self._timers.tell_later(self.actor_ref, m.Retry(), delay=self._retry_delay)

    def _on_retry(self, _msg: m.Retry) -> None:
        self._retry_armed = False
        self._read(self._book.retry_suspects())
        if needs_finalizer(self._obj):
            self._finalizer.request(self._obj, present=True)
        self._reconcile()

    def _on_finalizer_done(self, msg: m.FinalizerDone) -> None:
        if self._finalizer.done(msg):
            self._timers.tell_later(self.actor_ref, m.Retry(), delay=self._retry_delay)

    def _on_flush(self, _msg: m.Flush) -> None:
        obj = self._obj
        if obj is None:
            return
        # built only when a patch is due: the rollout's counts cost a pass over its batches
        self._status.flush(
            lambda previous: self._published(deployment_status(
                generation=obj.generation, aggregate=self._agg, error=self._error,
                conflict_with=self._conflict_with, name=obj.name, active=self._active,
                deleting=is_deleting(obj), entries=len(self._book), writing=self._book.writing,
                previous=previous,
                rollout=self._revisions.status(class_of=self._agg.get, updated=self._updated()),
                previous_progressing=self._previous_condition("Progressing"),
                unrenderable=self._render.unrenderable(),
                unrenderable_count=self._render.unrenderable_count,
                unrunnable=self._runnable.unrunnable(),
                unrunnable_count=self._runnable.unrunnable_count,
            ))
        )  # fmt: skip

    def _published(self, status: dict[str, Any]) -> dict[str, Any]:
        """``status``, once its figures are published: those of ``/metrics`` are always
        those of the status last built (at most one per status interval)."""
        rollout = status.get("rollout")
        self._metrics.deployment(
            self.key, owner=self.actor_urn, counts=status["aggregate"],
            rollout=None if rollout is None else (str(rollout["phase"]), int(rollout["revision"])),
        )  # fmt: skip
        return status

    def _previous_condition(self, kind: str) -> dict[str, Any] | None:
        last = self._status.throttle.last
        for condition in last.get("conditions", ()) if last is not None else ():
            if condition.get("type") == kind:
                return dict(condition)
        return None

    def _on_patch_done(self, msg: m.PatchDone) -> None:
        retry = not is_deleting(self._obj) or len(self._book) > 0
        shown = self._status.throttle.last  # the status this patch carried
        self._status.patched(msg, retry=retry)
        if msg.error is None and shown is not None and self._obj is not None:
            # its Events only once the status says the same: an operator killed between
            # the two then tells again (from the old status) rather than twice
            self._events.status(self._obj, shown)


_HANDLERS: dict[type, Any] = {
    m.Spec: DeploymentActor._on_spec,
    m.Synced: DeploymentActor._on_synced,
    m.Activate: DeploymentActor._on_activate,
    m.DesiredSeen: DeploymentActor._on_desired,
    m.ReportsSeen: DeploymentActor._on_reports,
    m.TargetChanges: DeploymentActor._on_targets,
    m.Retarget: DeploymentActor._on_retarget,
    m.Retire: DeploymentActor._on_retire,
    m.ClassesQueued: DeploymentActor._on_classes,
    m.RegisterLate: DeploymentActor._on_register_late,
    m.WritesDone: DeploymentActor._on_writes_done,
    m.Verified: DeploymentActor._on_verified,
    m.Retry: DeploymentActor._on_retry,
    m.FinalizerDone: DeploymentActor._on_finalizer_done,
    m.Flush: DeploymentActor._on_flush,
    m.RevisionsLoaded: DeploymentActor._on_revisions,
    m.RevisionCreated: DeploymentActor._on_revision_created,
    m.OutcomeRecorded: DeploymentActor._on_outcome,
    m.RolloutTick: DeploymentActor._on_rollout_tick,
    m.PatchDone: DeploymentActor._on_patch_done,
    m.FilesChanged: DeploymentActor._on_files_changed,
}


def _nothing(_devices: frozenset[str] | None) -> None:
    pass
