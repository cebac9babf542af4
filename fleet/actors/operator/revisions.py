"""A Deployment's numbered revisions and the rollout of the current one.

Why it exists: every score a Deployment's spec holds becomes a numbered revision, kept as
a ``DeploymentRevision`` resource (:mod:`fleet.runtime.kube.revisions`) so that
``fleetctl rollout undo`` and an automatic rollback work after any restart; with a
``spec.rollout`` the current revision goes out batch by batch (:mod:`.rollout`). The
:class:`RevisionKeeper` holds the rules between them, for its Deployment actor:

* the revisions are read once (then kept as written); the current spec's score is the
  newest revision if it holds the same bytes, else a new revision (the highest number
  plus one) is created; beyond ``spec.revisionHistoryLimit`` the oldest are deleted
  (never the current one, nor the stable one a rollback goes to);
* without ``spec.rollout`` nothing waits for any of this: every target gets the score at
  once, and the revision is recorded ``Complete``;
* with ``spec.rollout``, until its revision exists, writes hold: every target keeps the
  entry it has (a device with none gets none yet);
* where a rollout was (its current batch) is read back from ``.status.rollout``, how it
  ended (``Complete``, ``Halted``, ``RolledBack``) from its revision's record: the
  journal, written before a rollback changes any entry;
* the pause and approval annotations (``fleetctl rollout pause|resume|approve``) are
  read from the resource at each change.

Plain and synchronous: API calls go through the port and come back as messages
(``RevisionsLoaded``, ``RevisionCreated``, ``OutcomeRecorded``). What it must never do:
write a revision's outcome it did not reach, or let a rollout act before its revision
and its journal are known.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from fleet.contracts import ANNOTATION_ROLLOUT_APPROVED, ANNOTATION_ROLLOUT_PAUSED, DeviceId
from fleet.runtime.aiokit.timers import TimerPort
from fleet.runtime.kube.client import KubeObject
from fleet.runtime.kube.errors import KubeConflict
from fleet.runtime.kube.revisions import RevisionRecord, revision_name

from . import messages as m
from .desired import Want
from .ports import DeploymentApiPort, RepliesPort
from .rollout import ClassOf, Resume, Rollout, Updated
from .spec import DeploymentSpec

logger = logging.getLogger(__name__)


class _Recorded(msgspec.Struct):
    revision: int | None = None
    currentBatch: int | None = None  # the status field's name


class _Status(msgspec.Struct):
    rollout: _Recorded | None = None


def recorded_batch(status: bytes, revision: int) -> int:
    """The batch index ``.status.rollout`` says revision ``revision`` was at (0: none)."""
    try:
        parsed = msgspec.json.decode(status, type=_Status)
    except (msgspec.MsgspecError, RecursionError):
        return 0  # someone else's status, or garbage: start from the first batch
    recorded = parsed.rollout
    if recorded is None or recorded.revision != revision or recorded.currentBatch is None:
        return 0
    return max(0, min(recorded.currentBatch - 1, 1000))


def approved_batch(value: str | None, revision: int) -> int | None:
    """The highest batch index a person let start for ``revision`` (-1: none), from the
    approval annotation's value; None if the value is not ``<revision>/<batch>``."""
    if not value:
        return -1
    rev, _, batch = value.partition("/")
    if not (rev.isdigit() and batch.isdigit() and len(rev) < 10 and len(batch) < 4):
        return None
    return int(batch) - 1 if int(rev) == revision else -1


class RevisionKeeper:
    def __init__(
        self,
        key: m.DeploymentKey,
        *,
        api: DeploymentApiPort,
        replies: RepliesPort,
        timers: TimerPort,
        owner: Any,
        retry_delay: float,
    ) -> None:
        self._key, self._api, self._replies = key, api, replies
        self._timers, self._owner, self._retry_delay = timers, owner, retry_delay
        self._records: dict[int, RevisionRecord] = {}
        self._loaded = False
        self._loading = False
        self._creating: int | None = None
        self._taken = 0  # the highest revision name found taken by another resource
        self._recording: set[tuple[int, str]] = set()
        self._obj: KubeObject | None = None
        self._spec: DeploymentSpec | None = None
        self._labels: dict[DeviceId, Mapping[str, str]] = {}
        self.current: RevisionRecord | None = None
        self.engine: Rollout | None = None
        self._tick_at: float | None = None
        self._failed_journal: tuple[int, str, str] | None = None  # to write again
        self._bad_approval: str | None = None  # the approval value last warned about

    # -- inputs ----------------------------------------------------------------------

    def spec(self, obj: KubeObject, spec: DeploymentSpec | None) -> list[DeviceId]:
        """The resource as last seen: the devices whose desired value may have changed."""
        self._obj, self._spec = obj, spec
        if spec is None:
            return []
        if not self._loaded:
            self._load()
            return []
        touched = self._ensure()
        if self.engine is not None:
            self._annotations(self.engine)
        return touched

    def _annotations(self, engine: Rollout) -> None:
        """A person's pause and approval (``fleetctl rollout``), as the resource has them."""
        obj = self._obj
        value = obj.annotation(ANNOTATION_ROLLOUT_APPROVED) if obj is not None else None
        approved = approved_batch(value, engine.revision)
        if approved is None:
            if value != self._bad_approval:  # once per value: every status patch comes back
                self._bad_approval = value
                logger.warning(
                    "deployment %s/%s: annotation %s=%r is not <revision>/<batch>; ignored",
                    *self._key, ANNOTATION_ROLLOUT_APPROVED, (value or "")[:64],
                )  # fmt: skip
            approved = -1
        engine.approved = approved
        engine.paused = obj is not None and obj.annotation(ANNOTATION_ROLLOUT_PAUSED) == "true"

    def targets(
        self, labels: Mapping[DeviceId, Mapping[str, str]], removed: Iterable[DeviceId] = ()
    ) -> None:
        removed = list(removed)
        for device in removed:
            self._labels.pop(device, None)
        self._labels.update(labels)
        if self.engine is not None:
            self.engine.remove(removed)
            self.engine.add(labels.items())

    # -- the revisions ---------------------------------------------------------------

    def _load(self) -> None:
        if self._loading:
            return
        self._loading = True
        namespace, name = self._key
        uid = self._obj.uid if self._obj is not None else ""
        self._replies.when_done(
            self._api.list_revisions(namespace=namespace, deployment=name, uid=uid),
            on_result=lambda listed: m.RevisionsLoaded(
                records=tuple(listed.records), problems=tuple(listed.problems)
            ),
            on_error=lambda exc: m.RevisionsLoaded(records=(), error=str(exc) or repr(exc)),
        )

    def loaded(self, msg: m.RevisionsLoaded) -> list[DeviceId]:
        self._loading = False
        for problem in msg.problems:
            logger.warning("deployment %s/%s: unusable DeploymentRevision: %s", *self._key, problem)
        if msg.error is not None:
            logger.warning(
                "deployment %s/%s: reading its revisions failed (%s); retrying in %.1fs",
                *self._key, msg.error, self._retry_delay,
            )  # fmt: skip
            self._timers.tell_later(self._owner, m.RolloutTick(), delay=self._retry_delay)
            return []
        self._loaded = True
        self._records = {r.number: r for r in msg.records}
        return self._ensure()

    def _ensure(self) -> list[DeviceId]:
        spec, obj = self._spec, self._obj
        if spec is None or obj is None or not self._loaded:
            return []
        newest = self._records[max(self._records)] if self._records else None
        if newest is None or newest.desired != spec.desired:
            self._create(
                spec, obj, max(newest.number if newest is not None else 0, self._taken) + 1
            )
            return []
        if spec.rollout is None and newest.outcome is None:
            self._record(newest.number, "Complete", "rolled out at once (no spec.rollout)")
        engine = self.engine
        if (
            self.current == newest
            and (engine is None) == (spec.rollout is None)
            and (engine is None or engine.policy == spec.rollout)
        ):
            return []
        return self._configure(newest, spec)

    def _create(self, spec: DeploymentSpec, obj: KubeObject, number: int) -> None:
        if self._creating is not None:
            return
        self._creating = number
        namespace, name = self._key
        outcome = "Complete" if spec.rollout is None else None
        record = RevisionRecord(number=number, desired=spec.desired, outcome=outcome,
                                reason="", name=revision_name(name, number))  # fmt: skip
        self._replies.when_done(
            self._api.create_revision(namespace=namespace, deployment=name, uid=obj.uid,
                                      number=number, desired=spec.desired, outcome=outcome),
            on_result=lambda _r: m.RevisionCreated(record=record),
            on_error=lambda exc: m.RevisionCreated(
                record=record, error=str(exc) or repr(exc), conflict=isinstance(exc, KubeConflict)
            ),
        )  # fmt: skip

    def created(self, msg: m.RevisionCreated) -> list[DeviceId]:
        self._creating = None
        record: RevisionRecord = msg.record
        if msg.error is not None:
            logger.warning(
                "deployment %s/%s: creating revision %d failed (%s); %s",
                *self._key, record.number, msg.error,
                "reading the revisions again" if msg.conflict else "retrying",
            )  # fmt: skip
            if msg.conflict:  # another writer's, or an earlier Deployment's of this name
                self._taken = max(self._taken, record.number)
                self._loaded = False
                self._load()
            else:
                self._timers.tell_later(self._owner, m.RolloutTick(), delay=self._retry_delay)
            return []
        logger.info("deployment %s/%s: revision %d", *self._key, record.number)
        self._records[record.number] = record
        self._prune()
        return self._ensure()

    def _prune(self) -> None:
        spec = self._spec
        limit = spec.history_limit if spec is not None else 10
        numbers = sorted(self._records)
        keep = {numbers[-1]}
        stable = self._stable_before(numbers[-1])
        if stable is not None:
            keep.add(stable.number)
        namespace = self._key[0]
        for number in numbers[: max(0, len(numbers) - limit)]:
            if number in keep:
                continue
            record = self._records.pop(number)
            self._replies.when_done(
                self._api.delete_revision(namespace=namespace, name=record.name),
                on_result=lambda _r: m.RolloutTick(),
                on_error=functools.partial(_log_delete_failed, self._key, number),
            )

    def _stable_before(self, number: int) -> RevisionRecord | None:
        done = [n for n, r in self._records.items() if n < number and r.outcome == "Complete"]
        return self._records[max(done)] if done else None

    def _configure(self, record: RevisionRecord, spec: DeploymentSpec) -> list[DeviceId]:
        self.current = record
        policy = spec.rollout
        if policy is None:
            self.engine = None
            return list(self._labels)
        stable = self._stable_before(record.number)
        previous = self.engine
        batch = (
            previous.batch
            if previous is not None and previous.revision == record.number
            else recorded_batch(self._obj.status if self._obj is not None else b"", record.number)
        )
        engine = Rollout(
            name=str(spec.name),
            policy=policy,
            revision=record.number,
            new=record.desired,
            stable=stable.desired if stable is not None else None,
            stable_revision=stable.number if stable is not None else None,
            resume=Resume(batch=batch, outcome=record.outcome, reason=record.reason),
        )
        engine.add(self._labels.items())
        self._annotations(engine)
        self.engine = engine
        logger.info(
            "deployment %s/%s: rollout of revision %d (stable: %s) over %d targets, at batch "
            "%d of %d, %s",
            *self._key, record.number, engine.stable_revision, len(self._labels),
            engine.batch + 1, engine.batch_count, engine.phase,
        )  # fmt: skip
        return list(self._labels)

    # -- the journal -----------------------------------------------------------------

    def _record(self, number: int, outcome: str, reason: str) -> None:
        if (number, outcome) in self._recording:
            return
        record = self._records.get(number)
        if record is None:
            return
        self._recording.add((number, outcome))
        self._replies.when_done(
            self._api.record_outcome(namespace=self._key[0], name=record.name, outcome=outcome,
                                     reason=reason),
            on_result=lambda _r: m.OutcomeRecorded(number=number, outcome=outcome, reason=reason),
            on_error=lambda exc: m.OutcomeRecorded(number=number, outcome=outcome, reason=reason,
                                                   error=str(exc) or repr(exc)),
        )  # fmt: skip

    def recorded(self, msg: m.OutcomeRecorded) -> list[DeviceId]:
        self._recording.discard((msg.number, msg.outcome))
        if msg.error is not None:
            logger.warning(
                "deployment %s/%s: recording revision %d's outcome %s failed (%s); retrying",
                *self._key, msg.number, msg.outcome, msg.error,
            )  # fmt: skip
            self._timers.tell_later(self._owner, m.RolloutTick(), delay=self._retry_delay)
            self._failed_journal = (msg.number, msg.outcome, msg.reason)
            return []
        record = self._records.get(msg.number)
        if record is not None:
            record = self._records[msg.number] = record._replace(
                outcome=msg.outcome, reason=msg.reason
            )
            if self.current is not None and self.current.number == msg.number:
                self.current = record
        engine = self.engine
        if engine is None or engine.revision != msg.number:
            return []
        return engine.journaled(msg.outcome)

    # -- what the Deployment actor asks ----------------------------------------------

    @property
    def want(self) -> Want | None:
        """Each target's desired value (None: the spec's score for every target)."""
        spec = self._spec
        if spec is None or spec.rollout is None:
            return None
        engine = self.engine
        if engine is None or engine.new != spec.desired:
            return _hold
        return engine.want

    def step(self, *, class_of: ClassOf, updated: Updated, now: float) -> list[DeviceId]:
        """Let the rollout look at its batch: the devices whose desired value changed."""
        engine = self.engine
        if engine is None:
            if not self._loaded and not self._loading and self._spec is not None:
                self._load()  # a retry after a failed read
            elif self._loaded and self._creating is None:
                return self._ensure()
            return []
        failed = self._failed_journal
        if failed is not None:
            self._failed_journal = None
            self._record(*failed)
        step = engine.step(class_of=class_of, updated=updated, now=now)
        if step.journal is not None:
            self._record(engine.revision, *step.journal)
        if self._tick_at is not None and now >= self._tick_at:
            self._tick_at = None  # that tick is due: a wake-up asked again is armed again
        if step.wake_at is not None and self._tick_at != step.wake_at:
            self._tick_at = step.wake_at
            self._timers.tell_later(
                self._owner, m.RolloutTick(), delay=max(0.0, step.wake_at - now)
            )
        return step.touched

    def status(self, *, class_of: ClassOf, updated: Updated) -> dict[str, Any] | None:
        engine = self.engine
        if engine is not None and self._spec is not None and engine.new == self._spec.desired:
            return engine.status(class_of=class_of, updated=updated)
        current = self.current
        if current is not None and self._spec is not None and current.desired == self._spec.desired:
            return {"revision": current.number, "phase": "Complete", "reason": "rolled out at once"}
        return None


def _hold(_device: DeviceId, entry: bytes | None) -> bytes | None:
    """Until the rollout's revision is known: every target keeps what it has."""
    return entry


def _log_delete_failed(key: m.DeploymentKey, number: int, exc: BaseException) -> m.RolloutTick:
    logger.warning("deployment %s/%s: deleting old revision %d failed: %s", *key, number, exc)
    return m.RolloutTick()
