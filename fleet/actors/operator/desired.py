"""The desired-state entries of one deployment name, and what to write or delete next.

Why it exists: the Deployment actor that owns a name is the only keeper of that name's
entries (``<device>.<name>``: revision and bytes), as it wrote or saw them: the operator
reads desired-state once at start and then trusts its own writes (a watch would hand
every write straight back). :class:`DesiredBook` keeps them and holds the rules:

* diff: a targeted device whose entry is missing or holds other bytes gets a put; an
  entry of a device not targeted (or of a Deployment being deleted) gets a delete;
  nothing is written twice at once for one device, nor while its entry is re-read;
* foreign writes: a report naming a ``desired_revision`` newer than any revision this
  book wrote or saw for that key (an entry, or a delete marker) means someone else
  wrote it: the entry is re-read (:meth:`suspect`), and what the re-read finds
  (:meth:`verified`) is then repaired like any other difference. A report that comes
  while the device's write or re-read is in flight is checked when it completes.

Plain and synchronous (the writes themselves: :mod:`.writes`). What it must never do:
forget an entry it has not seen deleted, or let an older revision replace a newer one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable
from typing import NamedTuple

from fleet.contracts import DeploymentName, DeviceId

from .messages import DesiredEntry

logger = logging.getLogger(__name__)


Want = Callable[[DeviceId, bytes | None], bytes | None]
"""A device's desired value given the entry it has (None: it should have no entry): a
rollout's rule (:meth:`fleet.actors.operator.rollout.Rollout.want`)."""


class Plan(NamedTuple):
    puts: list[DeviceId]
    deletes: list[DeviceId]


class PlanEach(NamedTuple):
    """A :class:`Plan` whose puts differ by device: grouped by value."""

    puts: dict[bytes, list[DeviceId]]
    deletes: list[DeviceId]


class DesiredBook:
    def __init__(self) -> None:
        self._entries: dict[DeviceId, tuple[int, bytes]] = {}  # (revision, value)
        self._tombstones: dict[DeviceId, int] = {}  # revision of the delete last seen
        self._inflight: set[DeviceId] = set()
        self._verifying: dict[DeviceId, int] = {}  # -> the reported revision that caused it
        self._suspects: dict[DeviceId, int] = {}  # a re-read failed: again on retry
        self._late: dict[DeviceId, int] = {}  # reported while busy: checked when done
        self._dirty: set[DeviceId] = set()

    def __len__(self) -> int:
        """Live entries."""
        return len(self._entries)

    @property
    def writing(self) -> int:
        return len(self._inflight)

    @property
    def suspects(self) -> bool:
        return bool(self._suspects)

    def busy(self, device: DeviceId) -> bool:
        """A write of its entry is in flight."""
        return device in self._inflight

    def current(self, device: DeviceId, desired: bytes | None) -> int | None:
        """The revision of ``device``'s entry if it holds ``desired``, else None."""
        entry = self._entries.get(device)
        return entry[0] if entry is not None and entry[1] == desired else None

    def value(self, device: DeviceId) -> bytes | None:
        """The value of ``device``'s entry (None: it has none)."""
        entry = self._entries.get(device)
        return entry[1] if entry is not None else None

    def holds(self, device: DeviceId, value: bytes) -> bool:
        """Its entry is written and holds ``value``."""
        entry = self._entries.get(device)
        return entry is not None and entry[1] == value

    def observe(self, entry: DesiredEntry) -> bool:
        """An entry read from the bucket; False if this book knows a newer one."""
        current = self._entries.get(entry.device)
        if current is not None and current[0] >= entry.revision:
            return False
        if entry.value is None:
            self._entries.pop(entry.device, None)
        else:
            self._entries[entry.device] = (entry.revision, entry.value)
        self._dirty.add(entry.device)
        return True

    def touch(self, devices: Iterable[DeviceId]) -> None:
        """Look at these devices at the next :meth:`plan`."""
        self._dirty.update(devices)

    def touch_all(self) -> None:
        self._dirty.update(self._entries)

    def plan(self, *, targets: Container[DeviceId], desired: bytes, deleting: bool) -> Plan:
        """What to write now; the devices planned are in flight until :meth:`written`."""
        plan = Plan([], [])
        for device in list(self._dirty):
            if device in self._inflight or device in self._verifying:
                continue
            self._dirty.discard(device)
            entry = self._entries.get(device)
            if not deleting and device in targets:
                if entry is None or entry[1] != desired:
                    plan.puts.append(device)
            elif entry is not None:
                plan.deletes.append(device)
        self._inflight.update(plan.puts)
        self._inflight.update(plan.deletes)
        return plan

    def plan_each(self, *, targets: Container[DeviceId], want: Want) -> PlanEach:
        """:meth:`plan` with each target's value from ``want`` (a rollout's)."""
        plan = PlanEach({}, [])
        for device in list(self._dirty):
            if device in self._inflight or device in self._verifying:
                continue
            self._dirty.discard(device)
            entry = self._entries.get(device)
            value = (
                want(device, entry[1] if entry is not None else None) if device in targets else None
            )
            if value is None:
                if entry is not None:
                    plan.deletes.append(device)
            elif entry is None or entry[1] != value:
                plan.puts.setdefault(value, []).append(device)
                self._inflight.add(device)
        self._inflight.update(plan.deletes)
        return plan

    def written(
        self,
        puts: Iterable[tuple[DeviceId, bytes, int | None]],
        deletes: Iterable[tuple[DeviceId, int | None]],
    ) -> bool:
        """Writes completed (a revision None: failed, planned again); whether any failed."""
        failed = False
        for device, value, revision in puts:
            self._inflight.discard(device)
            if revision is None:
                failed = True
                self._dirty.add(device)
                continue
            self._tombstones.pop(device, None)
            current = self._entries.get(device)
            if current is None or current[0] < revision:
                self._entries[device] = (revision, value)
        for device, marker in deletes:
            self._inflight.discard(device)
            if marker is None:
                failed = True
                self._dirty.add(device)
                continue
            self._entries.pop(device, None)
            self._tombstones[device] = marker
        return failed

    # -- writes by others --------------------------------------------------------------

    def suspect(self, reported: Iterable[tuple[DeviceId, int]]) -> list[DeviceId]:
        """Reports' ``(device, desired_revision)``: the devices whose entry to re-read."""
        out: list[DeviceId] = []
        for device, revision in reported:
            if device in self._inflight or device in self._verifying:
                self._late[device] = revision
                continue
            entry = self._entries.get(device)
            known = max(entry[0] if entry is not None else 0, self._tombstones.get(device, 0))
            if revision > known:
                self._verifying[device] = revision
                self._suspects.pop(device, None)
                out.append(device)
        return out

    def settled(self, devices: Iterable[DeviceId]) -> list[DeviceId]:
        """Their writes or re-reads completed: check what was reported meanwhile."""
        late = [(d, self._late.pop(d)) for d in devices if d in self._late]
        return self.suspect(late) if late else []

    def retry_suspects(self) -> list[DeviceId]:
        """Re-reads that failed, to try again."""
        suspects, self._suspects = self._suspects, {}
        return self.suspect(suspects.items())

    def verified(
        self, entries: Iterable[tuple[DeviceId, int, bytes | None]], *, where: str = ""
    ) -> list[DeviceId]:
        """Re-read entries (revision -1: the read failed, 0 with no value: none); the
        devices whose entry changed (someone else wrote it), now to be reconciled (and
        logged, ``where`` naming the Deployment)."""
        changed: list[DeviceId] = []
        for device, revision, value in entries:
            reported = self._verifying.pop(device, 0)
            if revision < 0:  # could not read it: try again later
                self._suspects[device] = reported
                continue
            current = self._entries.get(device)
            if value is None:  # deleted by someone else (at or after the reported revision)
                self._entries.pop(device, None)
                self._tombstones[device] = max(reported, self._tombstones.get(device, 0))
            elif current is None or current[0] < revision:
                self._entries[device] = (revision, value)
            else:
                continue
            logger.info(
                "deployment %s: desired-state entry of %s changed by another writer (now %s); "
                "reconciling it",
                where, device, f"revision {revision}" if value is not None else "deleted",
            )  # fmt: skip
            changed.append(device)
            self._dirty.add(device)
        return changed

    def release(self, name: DeploymentName) -> tuple[DesiredEntry, ...]:
        """Every live entry, as seen, for the name's next keeper."""
        return tuple(
            DesiredEntry(device=device, deployment=name, revision=revision, value=value)
            for device, (revision, value) in self._entries.items()
        )
