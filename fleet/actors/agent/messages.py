"""Messages between the agent's actors: frozen, immutable values only.

Flow: the desired feed (on the loop) tells the device actor :class:`DesiredChanged`;
the device actor tells each deployment's reconciler :class:`Apply` / :class:`Remove`
/ :class:`Check`; a reconciler tells the device actor :class:`ReconcilerIdle` once it
removed everything. Timers tell :class:`HeartbeatTick`, :class:`ResyncTick` and
:class:`Check`.
"""

from __future__ import annotations

import msgspec

from fleet.contracts import PodmanScore
from fleet.runtime.kv import KvEntry
from fleet.runtime.podman import ContainerEvent


class DesiredChanged(msgspec.Struct, frozen=True, kw_only=True):
    entry: KvEntry


class Apply(msgspec.Struct, frozen=True, kw_only=True):
    """Converge to ``score`` (revision ``revision``); ``error``: the entry was malformed."""

    revision: int
    score: PodmanScore | None
    error: str | None = None


class Remove(msgspec.Struct, frozen=True, kw_only=True):
    """The desired entry was deleted at ``revision``: remove every owned container."""

    revision: int


class Check(msgspec.Struct, frozen=True, kw_only=True):
    """Compare actual containers with the desired ones now (drift, retry, resync)."""

    reason: str


class DebouncedCheck(msgspec.Struct, frozen=True, kw_only=True):
    """Several podman events for one deployment within the debounce window: one check."""

    deployment: str


class ReconcilerIdle(msgspec.Struct, frozen=True, kw_only=True):
    deployment: str


class HeartbeatTick(msgspec.Struct, frozen=True):
    pass


class ResyncTick(msgspec.Struct, frozen=True):
    pass


class ContainerChanged(msgspec.Struct, frozen=True, kw_only=True):
    event: ContainerEvent


class EventsBroken(msgspec.Struct, frozen=True, kw_only=True):
    reason: str


class ReopenEvents(msgspec.Struct, frozen=True):
    pass


class LabelsChanged(msgspec.Struct, frozen=True, kw_only=True):
    labels: dict[str, str]
