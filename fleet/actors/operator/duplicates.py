"""Two agents beating under one device id, told apart by the instance id in each beat.

Why it exists: ten agents started with the same ``device_id`` (a cloned disk, a copied
config) raced each other for minutes and nothing noticed. Every agent run puts a random
``instance_id`` in its heartbeats. Two instances *interleaved* on one key (A, then B,
then A again within the window) are two live processes; a restart is A..A then B..B and
never goes back to A. :class:`DuplicateDetector` is fed each key's instance ids in bucket
order and says when a device becomes a duplicate (with the instances seen within the
window) and when it stops being one (one instance alone for a whole window).

What it must never do: keep more than the last instance per device unless a device
switched instances within the window, or do I/O. Plain and synchronous: the fleet index
calls it. Beats without an instance id (older agents) are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import msgspec

from fleet.contracts import DeviceId

SHOWN_INSTANCES: Final = 8


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """``instances`` beat interleaved under ``device`` (None: only one instance now)."""

    device: DeviceId
    instances: tuple[str, ...] | None


class DuplicateDetector:
    def __init__(self, *, window: float) -> None:
        self._window = window
        self._last: dict[DeviceId, tuple[str, float]] = {}  # latest instance, when
        self._others: dict[DeviceId, dict[str, float]] = {}  # earlier ones, within window
        self._flagged: dict[DeviceId, tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self._last)

    def flagged(self, device: DeviceId) -> tuple[str, ...] | None:
        return self._flagged.get(device)

    def drop(self, device: DeviceId) -> None:
        self._last.pop(device, None)
        self._others.pop(device, None)
        self._flagged.pop(device, None)

    def beats(self, device: DeviceId, instances: Iterable[str], *, now: float) -> Change | None:
        """Feed ``device``'s instance ids, in bucket order, seen at ``now``."""
        before = self._flagged.get(device)
        duplicate = False
        for instance in instances:
            last = self._last.get(device)
            self._last[device] = (instance, now)
            if last is None or last[0] == instance:
                continue
            earlier = self._others.setdefault(device, {})
            earlier[last[0]] = last[1]
            seen = earlier.pop(instance, None)
            if seen is not None and now - seen <= self._window:
                duplicate = True  # back to an instance that beat within the window
        others = self._others.get(device)
        if others is not None:
            for instance, at in list(others.items()):
                if now - at > self._window:
                    del others[instance]
            if not others:
                del self._others[device]
        if duplicate or (before is not None and device in self._others):
            current = self._last[device][0]
            together = sorted({current, *self._others.get(device, {})})
            self._flagged[device] = tuple(together[:SHOWN_INSTANCES])
        elif before is not None:
            del self._flagged[device]  # alone for a whole window
        after = self._flagged.get(device)
        if after == before:
            return None
        if after is not None and before is not None and set(after) <= set(before):
            return None  # one of them left, the others still race: nothing new to say
        return Change(device=device, instances=after)
