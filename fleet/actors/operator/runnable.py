"""Which targets can run a Deployment's score: its ``type`` against each device's runtimes.

Why it exists: a device lists the score types it runs in its ``device-info``
(``DeviceInfo.runnable``: podman only when it says nothing, as an older agent), and the
operator must not write an entry of a type a targeted device cannot run (issue 17). A
Deployment actor's :class:`Runnability` keeps its targets' runtimes and:

* gates every value the actor would write (:meth:`gate`: the rollout's rule, the
  rendering's, or the spec's bytes for all): a value of a type the device does not run
  becomes None, so no entry is written and one already there is deleted, exactly as for
  a target its templated score cannot be rendered for (:mod:`.rendering`);
* lists those targets (:meth:`unrunnable`: at most :data:`UNRUNNABLE_MAX`, by id, with
  the reason) for the Deployment's ``status.unrunnable``, and counts them for the Ready
  condition. A target counts ``pending`` there (it has no entry), as an unrenderable one.

A target whose runtimes are not known counts as podman-only (the contract's reading of an
info without ``runtimes``); the fleet index never targets a device before its info, so
this is only the reading of a test or an older message.

Plain and synchronous. What it must never do: let a value of a type the device does not
list through, or read a score's bytes beyond its ``type`` (they are the operator's own
encoding: a value it cannot read is passed on, and the agent reports it).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from typing import Final

import msgspec

from fleet.contracts import DeviceId
from fleet.contracts.info import DEFAULT_RUNTIMES

from .desired import Want

UNRUNNABLE_MAX: Final = 10
_CACHED_TYPES: Final = 64  # distinct values seen (renderings differ per device)


class _Tagged(msgspec.Struct, frozen=True):
    type: str = ""


_TAGGED: Final = msgspec.json.Decoder(_Tagged)


def score_type(value: bytes) -> str | None:
    """The ``type`` of an encoded score; None when it cannot be read (passed on)."""
    try:
        kind = _TAGGED.decode(value).type
    except (msgspec.MsgspecError, RecursionError):
        return None
    return kind or None


def reason(kind: str, runtimes: Iterable[str]) -> str:
    """What ``status.unrunnable`` says of a device."""
    runs = ", ".join(runtimes) or "nothing"
    return f"its device-info lists no {kind!r} runtime (it runs: {runs})"[:256]


class Runnability:
    def __init__(self) -> None:
        self._runtimes: dict[DeviceId, tuple[str, ...]] = {}
        self._types: dict[bytes, str | None] = {}
        self._current: str | None = None  # the type of the spec's score
        self._failing: dict[DeviceId, str] = {}

    # -- inputs ----------------------------------------------------------------------

    def targets(
        self,
        runtimes: Mapping[DeviceId, tuple[str, ...]],
        removed: Iterable[DeviceId] = (),
    ) -> list[DeviceId]:
        """Targets added or whose runtimes changed, and removed: those changed returned."""
        for device in removed:
            self._runtimes.pop(device, None)
            self._failing.pop(device, None)
        changed = []
        for device, listed in runtimes.items():
            if self._runtimes.get(device) != listed:
                changed.append(device)
            self._runtimes[device] = listed
            self._judge(device)
        return changed

    def seed(self, desired: bytes | None) -> None:
        """The spec's current score: every target is judged against its type again."""
        kind = self.type_of(desired) if desired is not None else None
        if kind != self._current:
            self._current = kind
            self._failing.clear()
            for device in self._runtimes:
                self._judge(device)

    # -- the rule --------------------------------------------------------------------

    def runs(self, device: DeviceId, value: bytes) -> bool:
        kind = self.type_of(value)
        return kind is None or kind in self._runtimes.get(device, DEFAULT_RUNTIMES)

    @property
    def blocked(self) -> bool:
        """Some target cannot run the spec's score."""
        return bool(self._failing)

    def gate(self, want: Want | None, desired: bytes) -> Want | None:
        """``want`` (None: ``desired`` for every target) with every value of a type its
        device does not run replaced by None; None when nothing needs gating."""
        if want is None and not self._failing:
            return None
        runs, failing, runtimes = self.runs, self._failing, self._runtimes

        def gated(device: DeviceId, entry: bytes | None) -> bytes | None:
            value = desired if want is None else want(device, entry)
            if value is None:
                return None
            listed = runtimes.get(device, DEFAULT_RUNTIMES)
            if runs(device, value):
                if self._current is None or self._current in listed:
                    failing.pop(device, None)  # a mark for another revision's type
                return value
            kind = self.type_of(value) or "?"
            failing[device] = reason(kind, listed)
            return None

        return gated

    def type_of(self, value: bytes) -> str | None:
        types = self._types
        if value in types:
            return types[value]
        kind = score_type(value)
        if len(types) >= _CACHED_TYPES:
            types.clear()
        types[value] = kind
        return kind

    def _judge(self, device: DeviceId) -> None:
        kind = self._current
        listed = self._runtimes.get(device, DEFAULT_RUNTIMES)
        if kind is None or kind in listed:
            self._failing.pop(device, None)
        else:
            self._failing[device] = reason(kind, listed)

    # -- what the status shows -------------------------------------------------------

    def unrunnable(self) -> list[dict[str, str]]:
        """At most :data:`UNRUNNABLE_MAX` targets that cannot run the score, by id."""
        failing = self._failing
        return [
            {"device": str(d), "reason": failing[d]}
            for d in heapq.nsmallest(UNRUNNABLE_MAX, failing)
        ]

    @property
    def unrunnable_count(self) -> int:
        return len(self._failing)
