"""One actor per Deployment resource: its targets, its desired entries, its status.

Why it exists: a Deployment owns the desired-state entries ``<device>.<name>`` of the
devices it targets. This actor writes an entry only when its content differs from what
the bucket holds (so a restart rewrites nothing that is already right), deletes entries
of devices it no longer targets, classifies every targeted device (:mod:`.status`), and
patches ``.status`` coalesced: the first change after a quiet spell shows within
``status_delay``, a burst produces at most one patch per ``status_interval``.

States: inactive (waiting for the fleet index to finish its initial sync, or another
Deployment owns the name: ``conflict_with``), active, deleting (entries are deleted, then
the finalizer is released). The finalizer is never released before the initial sync:
until then nobody knows which entries exist. An invalid spec freezes it: nothing is
written or deleted, the condition says why.

What it must never do: block (every write and patch is a future that comes back as a
message), or write while another write to the same device is in flight.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pykka

from fleet.contracts import BUCKET_DESIRED_STATE, FINALIZER, DeploymentName, DeviceId
from fleet.errors import ContractError
from fleet.runtime.actorkit.failfast import SupervisedActor
from fleet.runtime.aiokit.loop import tell_when_done
from fleet.runtime.aiokit.timers import TimerPort
from fleet.runtime.kube.client import KubeObject
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.kv_publish import WriteResult

from . import messages as m
from .ports import DeploymentApiPort, KvWriterPort
from .spec import DeploymentSpec
from .status import Aggregate, classify, progress_condition, ready_condition

logger = logging.getLogger(__name__)

WRITE_CHUNK = 1000


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
        index: pykka.ActorRef[Any] | None = None,
        synced: bool = False,
    ) -> None:
        super().__init__()
        self.key = key
        # The fleet index has read every source (the Deployment list, the four buckets):
        # only then is it known which record owns the name and which entries exist.
        self._synced = synced
        self._index = index
        self._writer = writer
        self._api = api
        self._timers = timers
        self._status_delay = status_delay
        self._status_interval = status_interval
        self._retry_delay = retry_delay
        self._obj: KubeObject | None = None
        self._spec: DeploymentSpec | None = None
        self._error: str | None = None
        self._conflict_with: str | None = None
        self._active = False
        self._targets: set[DeviceId] = set()
        self._offline: set[DeviceId] = set()
        self._observed: dict[DeviceId, tuple[int, bytes]] = {}
        self._reports: dict[DeviceId, m.Report] = {}
        self._inflight: set[DeviceId] = set()
        self._tombstones: dict[DeviceId, int] = {}  # revision of the delete it last saw
        self._verifying: set[DeviceId] = set()  # a re-read of its entry is in flight
        self._suspects: set[DeviceId] = set()  # a re-read failed: again on Retry
        self._dirty: set[DeviceId] = set()
        self._agg = Aggregate()
        self._retry_armed = False
        self._finalizer_wanted: bool | None = None
        self._flush_armed = False
        self._patch_inflight = False
        self._status_dirty = False
        self._last_patch = 0.0
        self._last_status: dict[str, Any] | None = None

    # -- dispatch ----------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        handler = _HANDLERS.get(type(message))
        if handler is None:
            logger.warning("deployment %s/%s: unexpected message %r", *self.key, message)
            return None
        handler(self, message)
        if not isinstance(message, m.Flush | m.PatchDone):
            self._mark_status()
        return None

    @property
    def _deleting(self) -> bool:
        return self._obj is not None and self._obj.deletion_timestamp is not None

    # -- inputs ------------------------------------------------------------------------

    def _on_spec(self, msg: m.Spec) -> None:
        old = self._spec.desired if self._spec is not None else None
        self._obj, self._spec, self._error = msg.obj, msg.spec, msg.error
        self._conflict_with = msg.conflict_with
        if msg.spec is not None and msg.spec.desired != old:
            self._dirty |= self._targets
            self._reclassify(self._targets)
        if self._deleting:
            self._dirty |= set(self._observed)
        elif FINALIZER not in msg.obj.finalizers:
            self._set_finalizer(present=True)
        self._reconcile()

    def _on_synced(self, _msg: m.Synced) -> None:
        self._synced = True
        self._reconcile()

    def _on_activate(self, msg: m.Activate) -> None:
        self._active = self._synced = True
        for entry in msg.desired:
            self._observe(entry)
        self._reports = {r.device: r for r in msg.reports if r.phase is not None}
        self._targets = set(msg.targets)
        self._offline = set(msg.offline)
        self._dirty |= self._targets | set(self._observed)
        self._agg.clear()
        self._reclassify(self._targets)
        self._reconcile()

    def _on_desired(self, msg: m.DesiredSeen) -> None:
        for entry in msg.entries:
            self._observe(entry)
            self._dirty.add(entry.device)
        self._reclassify(e.device for e in msg.entries)
        self._reconcile()

    def _observe(self, entry: m.DesiredEntry) -> None:
        current = self._observed.get(entry.device)
        if current is not None and current[0] >= entry.revision:
            return
        if entry.value is None:
            self._observed.pop(entry.device, None)
        else:
            self._observed[entry.device] = (entry.revision, entry.value)

    def _on_reports(self, msg: m.ReportsSeen) -> None:
        for report in msg.reports:
            if report.phase is None:
                self._reports.pop(report.device, None)
            else:
                self._reports[report.device] = report
        self._reclassify(r.device for r in msg.reports)
        self._verify([r.device for r in msg.reports if self._foreign(r.device)])

    # -- writes by others ----------------------------------------------------------------
    # The operator does not watch desired-state (it would read back every write it made).
    # A write by anyone else shows in the device's report: a desired_revision newer than
    # any revision this actor wrote or saw for that key. Then it re-reads the key and
    # repairs it like any other difference.

    def _foreign(self, device: DeviceId) -> bool:
        report = self._reports.get(device)
        if report is None or device in self._inflight or device in self._verifying:
            return False
        observed = self._observed.get(device)
        known = max(observed[0] if observed is not None else 0, self._tombstones.get(device, 0))
        return report.desired_revision > known

    def _verify(self, devices: list[DeviceId]) -> None:
        if not devices or self._obj is None:
            return
        name = self._obj.name
        self._verifying.update(devices)
        self._suspects.difference_update(devices)
        future = self._writer.get_many(BUCKET_DESIRED_STATE, [f"{d}.{name}" for d in devices])

        def done(results: list[KvEntry | BaseException | None]) -> m.Verified:
            read: list[tuple[DeviceId, int, bytes | None]] = []
            errors = []
            for device, result in zip(devices, results, strict=True):
                if isinstance(result, BaseException):
                    errors.append(result)
                    read.append((device, -1, None))
                elif result is None:
                    read.append((device, 0, None))
                else:
                    read.append((device, result.revision, bytes(result.value)))
            return m.Verified(entries=tuple(read), error=repr(errors[0]) if errors else None)

        tell_when_done(
            future,
            self.actor_ref,
            on_result=done,
            on_error=lambda exc: m.Verified(
                entries=tuple((d, -1, None) for d in devices), error=repr(exc)
            ),
        )

    def _on_verified(self, msg: m.Verified) -> None:
        seen: list[m.DesiredEntry] = []
        for device, revision, value in msg.entries:
            self._verifying.discard(device)
            if revision < 0:  # could not read it: try again later
                self._suspects.add(device)
                continue
            report = self._reports.get(device)
            reported = report.desired_revision if report is not None else 0
            current = self._observed.get(device)
            if value is None:  # deleted by someone else (at or after the reported revision)
                self._observed.pop(device, None)
                self._tombstones[device] = max(reported, self._tombstones.get(device, 0))
            elif current is None or current[0] < revision:
                self._observed[device] = (revision, value)
            else:
                continue
            logger.info(
                "deployment %s/%s: desired-state entry of %s changed by another writer "
                "(now %s); reconciling it",
                *self.key,
                device,
                f"revision {revision}" if value is not None else "deleted",
            )
            name = self._wire_name()
            if name is not None:
                seen.append(
                    m.DesiredEntry(device=device, deployment=name, revision=revision, value=value)
                )
            self._dirty.add(device)
        if msg.error is not None:
            logger.warning(
                "deployment %s/%s: re-reading desired-state entries failed (%s); retrying in %.1fs",
                *self.key,
                msg.error,
                self._retry_delay,
            )
            self._arm_retry()
        if seen and self._index is not None:
            self._index.tell(m.DesiredWritten(entries=tuple(seen)))
        self._reclassify(d for d, _, _ in msg.entries)
        self._reconcile()

    def _on_targets(self, msg: m.TargetChanges) -> None:
        for device, online in msg.added:
            self._targets.add(device)
            (self._offline.discard if online else self._offline.add)(device)
            self._dirty.add(device)
        for device in msg.removed:
            self._targets.discard(device)
            self._offline.discard(device)
            self._agg.remove(device)
            self._dirty.add(device)
        self._reclassify(device for device, _ in msg.added)
        self._reconcile()

    def _on_retarget(self, msg: m.Retarget) -> None:
        for device in self._targets - msg.targets:
            self._agg.remove(device)
        self._dirty |= self._targets ^ msg.targets
        self._targets = set(msg.targets)
        self._offline = set(msg.offline)
        self._reclassify(self._targets)
        self._reconcile()

    def _on_liveness(self, msg: m.Liveness) -> None:
        self._offline.difference_update(msg.online)
        self._offline.update(msg.offline)
        self._reclassify(d for d in (*msg.online, *msg.offline) if d in self._targets)

    # -- classification ------------------------------------------------------------------

    def _reclassify(self, devices: Any) -> None:
        desired = self._spec.desired if self._spec is not None else None
        for device in devices:
            if device not in self._targets:
                continue
            observed = self._observed.get(device)
            revision = observed[0] if observed is not None and observed[1] == desired else None
            report = self._reports.get(device)
            self._agg.set(
                device,
                classify(
                    online=device not in self._offline,
                    revision=revision,
                    phase=report.phase if report is not None else None,
                    reported=report.desired_revision if report is not None else -1,
                ),
            )

    # -- writes --------------------------------------------------------------------------

    def _reconcile(self) -> None:
        if not self._active or self._conflict_with is not None:
            # Not the owner (or not yet known to be): it has no entries of its own, but
            # only after the initial sync is that sure. Released before it, the finalizer
            # of a Deployment deleted while the operator was down let the resource go
            # while its entries were still in the bucket.
            if self._deleting and self._synced:
                self._set_finalizer(present=False)
            return
        deleting = self._deleting
        if self._spec is None and not deleting:
            return  # invalid spec: frozen, nothing written or deleted
        desired = self._spec.desired if self._spec is not None else b""
        puts: list[DeviceId] = []
        deletes: list[DeviceId] = []
        for device in list(self._dirty):
            if device in self._inflight or device in self._verifying:
                continue
            self._dirty.discard(device)
            observed = self._observed.get(device)
            if not deleting and device in self._targets:
                if observed is None or observed[1] != desired:
                    puts.append(device)
            elif observed is not None:
                deletes.append(device)
        for i in range(0, len(puts), WRITE_CHUNK):
            self._submit_puts(puts[i : i + WRITE_CHUNK], desired)
        for i in range(0, len(deletes), WRITE_CHUNK):
            self._submit_deletes(deletes[i : i + WRITE_CHUNK])
        if deleting and not self._observed and not self._inflight:
            self._set_finalizer(present=False)

    def _submit_puts(self, devices: list[DeviceId], value: bytes) -> None:
        assert self._spec is not None
        name = self._spec.name
        self._inflight.update(devices)
        items = [(f"{d}.{name}", value) for d in devices]  # both validated: desired_state_key
        future = self._writer.put_many(BUCKET_DESIRED_STATE, items)

        def done(results: list[WriteResult]) -> m.WritesDone:
            puts = tuple(
                (d, value, r if isinstance(r, int) else None)
                for d, r in zip(devices, results, strict=True)
            )
            errors = [r for r in results if not isinstance(r, int)]
            return m.WritesDone(puts=puts, deletes=(), error=repr(errors[0]) if errors else None)

        tell_when_done(
            future,
            self.actor_ref,
            on_result=done,
            on_error=lambda exc: m.WritesDone(
                puts=tuple((d, value, None) for d in devices), deletes=(), error=repr(exc)
            ),
        )

    def _submit_deletes(self, devices: list[DeviceId]) -> None:
        name = self._obj.name if self._obj is not None else ""
        self._inflight.update(devices)
        keys = [f"{d}.{name}" for d in devices]  # the same key desired_state_key makes
        future = self._writer.delete_many(BUCKET_DESIRED_STATE, keys)

        def done(results: list[WriteResult]) -> m.WritesDone:
            deletes = tuple(
                (d, r if isinstance(r, int) else None)
                for d, r in zip(devices, results, strict=True)
            )
            errors = [r for r in results if not isinstance(r, int)]
            return m.WritesDone(puts=(), deletes=deletes, error=repr(errors[0]) if errors else None)

        tell_when_done(
            future,
            self.actor_ref,
            on_result=done,
            on_error=lambda exc: m.WritesDone(
                puts=(), deletes=tuple((d, None) for d in devices), error=repr(exc)
            ),
        )

    def _on_writes_done(self, msg: m.WritesDone) -> None:
        failed = False
        written: list[m.DesiredEntry] = []
        name = self._wire_name()
        for device, value, revision in msg.puts:
            self._inflight.discard(device)
            if revision is None:
                failed = True
                self._dirty.add(device)
                continue
            self._tombstones.pop(device, None)
            current = self._observed.get(device)
            if current is None or current[0] < revision:
                self._observed[device] = (revision, value)
            if name is not None:
                written.append(m.DesiredEntry(device=device, deployment=name,
                                              revision=revision, value=value))  # fmt: skip
        for device, marker in msg.deletes:
            self._inflight.discard(device)
            if marker is not None:
                self._observed.pop(device, None)
                self._tombstones[device] = marker
                if name is not None:
                    written.append(m.DesiredEntry(device=device, deployment=name,
                                                  revision=marker, value=None))  # fmt: skip
            else:
                failed = True
                self._dirty.add(device)
        if written and self._index is not None:
            self._index.tell(m.DesiredWritten(entries=tuple(written)))
        if failed:
            logger.warning(
                "deployment %s/%s: desired-state writes failed (%s); retrying in %.1fs",
                *self.key,
                msg.error,
                self._retry_delay,
            )
            self._arm_retry()
        self._reclassify(d for d, _, _ in msg.puts)
        # Reports that came while the write was in flight are checked now.
        done = [d for d, _, _ in msg.puts] + [d for d, _ in msg.deletes]
        self._verify([d for d in done if self._foreign(d)])
        self._reconcile()

    def _wire_name(self) -> DeploymentName | None:
        if self._spec is not None:
            return self._spec.name
        try:
            return DeploymentName.try_new(self._obj.name) if self._obj is not None else None
        except ContractError:
            return None

    def _arm_retry(self) -> None:
        if not self._retry_armed:
            self._retry_armed = True
            self._timers.tell_later(self.actor_ref, m.Retry(), delay=self._retry_delay)

    def _on_retry(self, _msg: m.Retry) -> None:
        self._retry_armed = False
        if self._suspects:
            self._verify(list(self._suspects))
        if self._obj is not None and not self._deleting and FINALIZER not in self._obj.finalizers:
            self._set_finalizer(present=True)
        self._reconcile()

    # -- finalizer -----------------------------------------------------------------------

    def _set_finalizer(self, *, present: bool) -> None:
        if self._finalizer_wanted is present or self._obj is None:
            return
        if present is False and FINALIZER not in self._obj.finalizers:
            self._finalizer_wanted = False
            return
        self._finalizer_wanted = present
        namespace, name = self.key
        future = self._api.set_deployment_finalizer(namespace=namespace, name=name, present=present)
        tell_when_done(
            future,
            self.actor_ref,
            on_result=lambda _ok: m.FinalizerDone(present=present, error=None),
            on_error=lambda exc: m.FinalizerDone(present=present, error=str(exc)),
        )

    def _on_finalizer_done(self, msg: m.FinalizerDone) -> None:
        if msg.error is not None:
            logger.warning(
                "deployment %s/%s: finalizer %s failed: %s",
                *self.key,
                "add" if msg.present else "removal",
                msg.error,
            )
            self._finalizer_wanted = None
            self._timers.tell_later(self.actor_ref, m.Retry(), delay=self._retry_delay)
        elif not msg.present:
            logger.info("deployment %s/%s: entries deleted, finalizer released", *self.key)

    # -- status ----------------------------------------------------------------------------

    def _mark_status(self) -> None:
        self._status_dirty = True
        if self._flush_armed or self._patch_inflight or self._obj is None:
            return
        wait = self._last_patch + self._status_interval - time.monotonic()
        self._flush_armed = True
        self._timers.tell_later(self.actor_ref, m.Flush(), delay=max(self._status_delay, wait))

    def _on_flush(self, _msg: m.Flush) -> None:
        self._flush_armed = False
        if not self._status_dirty or self._obj is None:
            return
        self._status_dirty = False
        status = self._status()
        if status == self._last_status:
            return
        self._last_status = status
        self._patch_inflight = True
        namespace, name = self.key
        future = self._api.patch_deployment_status(namespace=namespace, name=name, status=status)
        tell_when_done(
            future,
            self.actor_ref,
            on_result=lambda _r: m.PatchDone(error=None),
            on_error=lambda exc: m.PatchDone(error=str(exc)),
        )

    def _on_patch_done(self, msg: m.PatchDone) -> None:
        self._patch_inflight = False
        self._last_patch = time.monotonic()
        if msg.error is not None:
            logger.debug("deployment %s/%s: status patch failed: %s", *self.key, msg.error)
            self._last_status = None
            self._status_dirty = not self._deleting or bool(self._observed)
        if self._status_dirty:
            self._status_dirty = False
            self._mark_status()

    def _status(self) -> dict[str, Any]:
        assert self._obj is not None
        generation = self._obj.generation
        counts = self._agg.counts()
        previous = None
        if self._last_status is not None:
            previous = self._last_status["conditions"][0]
        if self._error is not None:
            cond = ("False", "InvalidSpec", self._error)
        elif self._conflict_with is not None:
            counts = dict.fromkeys(counts, 0)
            cond = (
                "False",
                "NameConflict",
                f"deployment name {self._obj.name!r} is already used by Deployment "
                f"{self._conflict_with} (created earlier); desired-state keys carry only the "
                "name, so this one writes nothing. Rename it or delete the other.",
            )
        elif not self._active:
            cond = ("Unknown", "Syncing", "waiting for the operator's initial sync")
        elif self._deleting:
            cond = ("False", "Deleting", f"deleting {len(self._observed)} desired-state entries")
        else:
            cond = progress_condition(counts, writing=len(self._inflight))
        status, reason, text = cond
        reports = self._reports
        messages = {d: reports[d].message for d in self._agg.failed if d in reports}
        return {
            "observedGeneration": generation,
            "aggregate": counts,
            "failingDevices": self._agg.failing(messages) if self._conflict_with is None else [],
            "conditions": [
                ready_condition(
                    status=status,
                    reason=reason,
                    message=text,
                    generation=generation,
                    previous=previous,
                )
            ],
        }


_HANDLERS: dict[type, Any] = {
    m.Spec: DeploymentActor._on_spec,
    m.Synced: DeploymentActor._on_synced,
    m.Activate: DeploymentActor._on_activate,
    m.DesiredSeen: DeploymentActor._on_desired,
    m.ReportsSeen: DeploymentActor._on_reports,
    m.TargetChanges: DeploymentActor._on_targets,
    m.Retarget: DeploymentActor._on_retarget,
    m.Liveness: DeploymentActor._on_liveness,
    m.WritesDone: DeploymentActor._on_writes_done,
    m.Verified: DeploymentActor._on_verified,
    m.Retry: DeploymentActor._on_retry,
    m.FinalizerDone: DeploymentActor._on_finalizer_done,
    m.Flush: DeploymentActor._on_flush,
    m.PatchDone: DeploymentActor._on_patch_done,
}
