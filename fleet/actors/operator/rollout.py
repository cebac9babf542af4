"""One revision's progressive rollout over a Deployment's targets: who gets it when.

Why it exists: a changed score written to every device at once lets one bad image take
down the whole fleet in seconds. :class:`Rollout` keeps the rules of ``spec.rollout``
(:mod:`.rollout_spec`; docs/rollouts.md):

* **Batches.** The targets are ordered by a hash of the Deployment's name and the device
  id (stable across revisions and restarts, spread across the fleet), and cut into the
  policy's batches in order: each takes, from the devices no earlier batch took, those
  its selector matches, up to its size (of all targets); the rest is the last batch.
  A device that joins or is relabelled mid-rollout lands where its rank says.
* **What a device gets.** A device of a batch before the current one gets the new score;
  one of the current batch gets it once admitted (at most ``maxUnavailable`` of the
  batch updating at a time; unreachable ones are admitted freely: they cost nothing and
  catch up when back); any other keeps the entry it has, or, with none, gets the stable
  score (the last revision whose rollout completed; none: no entry). Once rolled back,
  every target gets the stable score; once complete, every target gets the new one.
* **Progress.** The current batch is done when ``successThreshold`` percent of its
  devices (unreachable ones left out, by default) run the new revision; then the next
  one starts (after ``pauseBetweenBatches``, or a person's approval). A batch with no
  device waits, saying which selector matches nothing.
* **Halt.** When the devices failing at the new revision (and, with ``unreachable: fail``,
  the unreachable ones) among the batches reached so far reach ``failureThreshold``, the
  rollout halts; with ``autoRollback`` it rolls back. A rollback is journaled on the
  revision's record first (:attr:`Step.journal`): only after the journal is written
  (:meth:`journaled`) do entries change, so a restart can never undo a rollback.

Plain and synchronous: it reads classes and entries through callables and says which
devices to look at again; it never writes. What it must never do: give a device outside
the batches reached the new score, or give a device the new score and take it back
unless rolling back.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal, NamedTuple

from fleet.contracts import DeviceId

from .rollout_spec import RolloutPolicy
from .selectors import LabelSelector

RolloutPhase = Literal[
    "Progressing", "Paused", "WaitingForApproval", "Halted", "RolledBack", "Complete"
]
OUTCOMES: Final = ("Complete", "Halted", "RolledBack")
"""Phases a rollout ends in; each is journaled on its revision's record."""

ClassOf = Callable[[DeviceId], str | None]
Updated = Callable[[DeviceId], bool]


class Resume(NamedTuple):
    """Where a rollout was, as recorded: the current batch (from ``.status.rollout``) and
    the outcome journaled on its revision's record (None: still going)."""

    batch: int = 0
    outcome: str | None = None
    reason: str = ""


class Step(NamedTuple):
    """What :meth:`Rollout.step` decided: devices whose desired value may have changed,
    a journal entry to write (``(phase, reason)``), and when to step again (monotonic)."""

    touched: list[DeviceId]
    journal: tuple[str, str] | None
    wake_at: float | None


_START: Final = Resume()


def rank(name: str, device: DeviceId) -> int:
    digest = hashlib.blake2b(f"{name}/{device}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class Rollout:
    def __init__(
        self,
        *,
        name: str,
        policy: RolloutPolicy,
        revision: int,
        new: bytes,
        stable: bytes | None,
        stable_revision: int | None,
        resume: Resume = _START,
    ) -> None:
        self.name = name
        self.policy = policy
        self.revision = revision
        self.new = new
        self.stable = stable
        self.stable_revision = stable_revision
        self._labels: dict[DeviceId, Mapping[str, str]] = {}
        self._ranks: dict[DeviceId, int] = {}
        self._members: list[list[DeviceId]] = []
        self._batch_of: dict[DeviceId, int] = {}
        self._dirty = True
        self._moved: list[DeviceId] = []  # devices whose batch changed since the last step
        self.batch = max(0, min(resume.batch, len(policy.batches)))
        self._admitted: set[DeviceId] = set()
        self._skipped: dict[int, int] = {}
        self.phase: RolloutPhase = "Progressing"
        self.reason = ""
        self._journal_pending = False  # a Halted/RolledBack outcome not yet journaled
        self._rolled_back = False  # journaled: every target gets the stable score
        self._complete = False
        self.paused = False  # by a person (the pause annotation)
        self.approved = -1  # the highest batch index a person let start
        self._pause_until: float | None = None
        if resume.outcome == "Complete":
            self._complete, self.phase = True, "Complete"
            self.batch = len(policy.batches)
        elif resume.outcome in ("Halted", "RolledBack"):
            self.phase = "Halted" if resume.outcome == "Halted" else "RolledBack"
            self._rolled_back = resume.outcome == "RolledBack"
            self.reason = resume.reason

    # -- targets ---------------------------------------------------------------------

    def add(self, labels: Iterable[tuple[DeviceId, Mapping[str, str]]]) -> None:
        """Targets added, or relabelled, with their labels."""
        for device, device_labels in labels:
            self._labels[device] = device_labels
            if device not in self._ranks:
                self._ranks[device] = rank(self.name, device)
        self._dirty = True

    def remove(self, devices: Iterable[DeviceId]) -> None:
        for device in devices:
            if self._labels.pop(device, None) is not None:
                self._ranks.pop(device, None)
                self._admitted.discard(device)
                self._dirty = True

    def _assign(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        ranks = self._ranks
        remaining = sorted(self._labels, key=ranks.__getitem__)
        total = len(remaining)
        members: list[list[DeviceId]] = []
        for batch in self.policy.batches:
            pool = (
                remaining if batch.selector is None else self._matching(remaining, batch.selector)
            )
            count = len(pool) if batch.size is None else min(batch.size.of(total), len(pool))
            chosen = pool[:count]
            members.append(chosen)
            if chosen:
                taken = set(chosen)
                remaining = [d for d in remaining if d not in taken]
        members.append(remaining)
        old = self._batch_of
        self._members = members
        self._batch_of = {d: i for i, batch in enumerate(members) for d in batch}
        if old:
            get = old.get
            self._moved += [d for d, i in self._batch_of.items() if get(d, i) != i]

    def _matching(self, devices: list[DeviceId], selector: LabelSelector) -> list[DeviceId]:
        labels = self._labels
        return [d for d in devices if selector.matches(labels[d])]

    @property
    def batch_count(self) -> int:
        return len(self.policy.batches) + 1

    def members(self, index: int) -> list[DeviceId]:
        self._assign()
        return self._members[index] if index < len(self._members) else []

    # -- what each device gets -------------------------------------------------------

    def want(self, device: DeviceId, entry: bytes | None) -> bytes | None:
        """The desired value for ``device`` now, given the entry it has (None: none)."""
        if self._complete:
            return self.new
        if self._rolled_back:
            return self.stable
        self._assign()
        index = self._batch_of.get(device)
        if index is not None and (
            index < self.batch
            or (index == self.batch and (device in self._admitted or entry == self.new))
        ):
            return self.new
        return entry if entry is not None else self.stable

    # -- progress --------------------------------------------------------------------

    def step(self, *, class_of: ClassOf, updated: Updated, now: float) -> Step:
        """Look at the current batch: admit, advance, halt or complete."""
        self._assign()
        touched, self._moved = self._moved, []
        if self._complete or self._rolled_back or self._journal_pending or self.phase == "Halted":
            return Step(touched, None, None)
        while True:
            stop = self._step_batch(class_of, updated, now, touched)
            if stop is not None:
                return stop

    def _step_batch(
        self, class_of: ClassOf, updated: Updated, now: float, touched: list[DeviceId]
    ) -> Step | None:
        """The current batch: a Step to stop at, or None when it advanced to the next."""
        members = self._members[self.batch]
        counts = self._count(members, class_of, updated)
        halt = self._failures(class_of, updated)
        if halt is not None:
            return self._halt(halt, touched)
        if self.paused:
            self.phase, self.reason = "Paused", "paused by a person (fleetctl rollout resume)"
            return Step(touched, None, None)
        touched += self._admit(members, class_of, updated, counts)
        done, why = self._done(members, counts)
        last = self.batch == len(self._members) - 1
        forced = self.approved >= self.batch + 1 and not last
        if not done and not forced:
            self.phase, self.reason = "Progressing", why
            self._pause_until = None
            return Step(touched, None, None)
        if last:
            self._complete, self.phase = True, "Complete"
            self.reason = f"revision {self.revision} reached every batch"
            touched += list(self._labels)
            return Step(touched, ("Complete", self.reason), None)
        if not forced:
            wait = self._wait_between(now)
            if wait is not None:
                return Step(touched, None, wait if wait > 0 else None)
        self._pause_until = None
        self._skipped[self.batch] = counts["unreachable"]
        touched += [d for d in members if d not in self._admitted]
        self._admitted.clear()
        self.batch += 1
        return None

    def _wait_between(self, now: float) -> float | None:
        """The current batch is done: None to start the next now, else the time to wake
        at (0: when a person approves)."""
        following = f"batch {self.batch + 1} done; batch {self.batch + 2}"
        if self.policy.manual:
            self.phase = "WaitingForApproval"
            self.reason = f"{following} waits for approval (fleetctl rollout approve)"
            return 0.0
        if self.policy.pause <= 0:
            return None
        if self._pause_until is None:
            self._pause_until = now + self.policy.pause
        if now >= self._pause_until:
            return None
        self.phase = "Paused"
        self.reason = f"{following} starts after pauseBetweenBatches ({self.policy.pause:g}s)"
        return self._pause_until

    def _count(
        self, members: list[DeviceId], class_of: ClassOf, updated: Updated
    ) -> dict[str, int]:
        counts = {"updated": 0, "running": 0, "failed": 0, "unreachable": 0, "unavailable": 0}
        admitted = self._admitted
        for device in members:
            cls = class_of(device)
            if cls == "unreachable":
                counts["unreachable"] += 1
                continue
            written = updated(device)
            if not written and device not in admitted:
                continue
            if written:
                counts["updated"] += 1
                if cls == "running":
                    counts["running"] += 1
                    continue
                if cls == "failed":
                    counts["failed"] += 1
            counts["unavailable"] += 1
        return counts

    def _admit(
        self,
        members: list[DeviceId],
        class_of: ClassOf,
        updated: Updated,
        counts: dict[str, int],
    ) -> list[DeviceId]:
        admitted, out = self._admitted, []
        budget = max(1, self.policy.max_unavailable.of(len(members))) - counts["unavailable"]
        for device in members:
            if device in admitted or updated(device):
                continue
            if class_of(device) == "unreachable":
                admitted.add(device)  # free: it is unavailable either way; catches up when back
                out.append(device)
            elif budget > 0:
                admitted.add(device)
                out.append(device)
                budget -= 1
        return out

    def _done(self, members: list[DeviceId], counts: dict[str, int]) -> tuple[bool, str]:
        batch = self.batch
        if not members:
            if batch < len(self.policy.batches) and self.policy.batches[batch].selector is not None:
                field = self.policy.batches[batch].field
                return False, f"{field}.selector matches no targeted device"
            return True, ""
        skip = 0 if self.policy.unreachable_fails else counts["unreachable"]
        eligible = len(members) - skip
        needed = math.ceil(self.policy.success_threshold * eligible / 100)
        running = counts["running"]
        why = (
            f"batch {batch + 1}/{self.batch_count}: {running}/{len(members)} running revision "
            f"{self.revision}, {needed} needed ({self.policy.success_threshold}% of "
            f"{eligible}); {counts['failed']} failed, {counts['unreachable']} unreachable"
        )
        return running >= needed, why

    def _failures(self, class_of: ClassOf, updated: Updated) -> str | None:
        threshold = self.policy.failure_threshold
        if threshold is None:
            return None
        reached, failed = 0, 0
        fails_unreachable = self.policy.unreachable_fails
        for members in self._members[: self.batch + 1]:
            reached += len(members)
            for device in members:
                cls = class_of(device)
                if (cls == "failed" and updated(device)) or (
                    fails_unreachable and cls == "unreachable"
                ):
                    failed += 1
        limit = max(1, threshold.of(reached))
        if failed < limit:
            return None
        return (
            f"{failed} of {reached} devices reached failed at revision {self.revision} "
            f"(failureThreshold {threshold} = {limit})"
        )

    def _halt(self, why: str, touched: list[DeviceId]) -> Step:
        if self.policy.auto_rollback:
            self.phase = "RolledBack"
            self.reason = f"{why}; rolling back to " + (
                f"revision {self.stable_revision}"
                if self.stable_revision is not None
                else "no revision (its entries are deleted)"
            )
            self._journal_pending = True
            return Step(touched, ("RolledBack", self.reason), None)
        self.phase, self.reason = "Halted", why
        return Step(touched, ("Halted", why), None)

    def journaled(self, phase: str) -> list[DeviceId]:
        """The outcome ``phase`` is on the revision's record: the devices to look at."""
        if phase != "RolledBack" or not self._journal_pending:
            return []
        self._journal_pending = False
        self._rolled_back = True
        return list(self._labels)

    # -- what the status shows -------------------------------------------------------

    def status(self, *, class_of: ClassOf, updated: Updated) -> dict[str, Any]:
        self._assign()
        batches = []
        for i, members in enumerate(self._members):
            counts = self._count(members, class_of, updated)
            entry: dict[str, Any] = {
                "batch": i + 1,
                "devices": len(members),
                "updated": counts["updated"],
                "running": counts["running"],
                "failed": counts["failed"],
                "unreachable": counts["unreachable"],
                "skipped": self._skipped.get(i, 0) if not self.policy.unreachable_fails else 0,
            }
            if i < len(self.policy.batches):
                entry["field"] = self.policy.batches[i].field
            batches.append(entry)
        out: dict[str, Any] = {
            "revision": self.revision,
            "phase": self.phase,
            "currentBatch": min(self.batch, len(self._members) - 1) + 1,
            "batchCount": len(self._members),
            "batches": batches,
            "reason": self.reason,
        }
        if self.stable_revision is not None:
            out["stableRevision"] = self.stable_revision
        return out
