"""Desired-state entries that no active Deployment actor holds, and the orphan sweep.

Why it exists: the operator reads desired-state once, at start, before it knows which
Deployment owns which name; and a Deployment actor that retires hands its entries back.
Entries wait here until the owner of their name is activated (:meth:`Unclaimed.take`: from
then on that actor is their only keeper) or, when their name has no owner after the
initial sync, until they are deleted as orphans (:meth:`delete_orphans`, through a
:class:`~.writes.DesiredWriter`; :meth:`deleted` with its outcome). While a retiring
owner's entries are on their way back (:meth:`retiring`, then :meth:`returned`), nobody
may take its name's entries: they are not all here yet.

Plain and synchronous. What it must never do: hand the same entry to two actors
(``take`` removes what it hands over), or forget an orphan it has not seen deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from fleet.contracts import DeploymentName, DeviceId

from .messages import DesiredEntry, OrphansDeleted
from .writes import DesiredWriter

logger = logging.getLogger(__name__)


class Unclaimed:
    def __init__(self, writes: DesiredWriter | None = None) -> None:
        self._writes = writes
        self._entries: dict[DeploymentName, dict[DeviceId, DesiredEntry]] = {}
        self._retiring: dict[DeploymentName, Any] = {}  # -> the retiring actor's ref

    def retiring(self, name: DeploymentName, ref: Any) -> None:
        """``name``'s owner retires (``ref``): its entries come back with ``Released``."""
        self._retiring[name] = ref

    def returned(self, name: DeploymentName, entries: Iterable[DesiredEntry]) -> None:
        self._retiring.pop(name, None)
        self.add(entries)

    def awaiting(self, name: DeploymentName) -> bool:
        """Entries of ``name`` are on their way back: wait before handing them over."""
        return name in self._retiring

    def retiring_refs(self) -> list[Any]:
        return list(self._retiring.values())

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._entries.values())

    def names(self) -> list[DeploymentName]:
        return list(self._entries)

    def add(self, entries: Iterable[DesiredEntry]) -> None:
        """Entries seen (a deleted one, ``value`` None, removes its key's entry)."""
        for entry in entries:
            by_device = self._entries.setdefault(entry.deployment, {})
            if entry.value is None:
                by_device.pop(entry.device, None)
            else:
                by_device[entry.device] = entry
            if not by_device:
                del self._entries[entry.deployment]

    def take(self, name: DeploymentName) -> tuple[DesiredEntry, ...]:
        return tuple(self._entries.pop(name, {}).values())

    def live(self, name: DeploymentName) -> list[DesiredEntry]:
        return list(self._entries.get(name, {}).values())

    def delete_orphans(self, name: DeploymentName) -> None:
        """Delete the entries of ``name`` (nobody owns it); they stay until deleted."""
        live = self.live(name)
        if live and self._writes is not None:
            logger.info("deleting %d orphaned desired-state entries of deployment %s",
                        len(live), name)  # fmt: skip
            self._writes.delete_orphans(name, live)

    def deleted(self, outcome: OrphansDeleted) -> None:
        if outcome.failed:
            logger.warning("deleting %d orphaned desired-state entries of %s failed: %s",
                           outcome.failed, outcome.name, outcome.error)  # fmt: skip
        self.forget(outcome.name, outcome.devices)

    def forget(self, name: DeploymentName, devices: Iterable[DeviceId]) -> None:
        by_device = self._entries.get(name)
        if by_device is None:
            return
        for device in devices:
            by_device.pop(device, None)
        if not by_device:
            del self._entries[name]
