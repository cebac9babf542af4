"""Messages between the agent's actors: frozen, immutable values only.

Flow: the desired feed (on the loop) tells the device actor :class:`DesiredChanged`
(and :class:`DesiredSynced` once it has read the device's entries from NATS); the device
actor tells each deployment's reconciler :class:`Apply` / :class:`Remove` / :class:`Check`;
a reconciler tells the device actor :class:`ReconcilerIdle` once it removed everything.
Each runtime's drift stream tells :class:`ContainerChanged` (or :class:`EventsBroken`).
The device actor tells the orphan sweeper :class:`Sweep`, which answers
:class:`OwnedDeployments`. Timers tell :class:`HeartbeatTick`, :class:`ResyncTick` and
:class:`Check`.

What it must never do: carry a mutable value or an actor's internals; a message is a fact.
"""

from __future__ import annotations

import msgspec

from fleet.contracts import ReconcileScore
from fleet.runtime.nats.kv import KvEntry

from .runtimes.port import DriftEvent


class DesiredChanged(msgspec.Struct, frozen=True, kw_only=True):
    entry: KvEntry


class Apply(msgspec.Struct, frozen=True, kw_only=True):
    """Converge to ``score`` (revision ``revision``); ``error``: the entry was malformed."""

    revision: int
    score: ReconcileScore | None
    error: str | None = None


class Remove(msgspec.Struct, frozen=True, kw_only=True):
    """The desired entry was deleted at ``revision``: remove every owned container.

    ``sweep``: sent by the orphan sweep (``revision`` is then the highest revision the
    containers were created for); when nothing is left to remove, nothing is reported.
    """

    revision: int
    sweep: bool = False


class Check(msgspec.Struct, frozen=True, kw_only=True):
    """Compare actual containers with the desired ones now (drift, retry, resync).

    ``exits``: (container name in the score, exit code) of non-zero exits podman
    reported since the last check, for the crash-loop report.
    """

    reason: str
    exits: tuple[tuple[str, int], ...] = ()


class DebouncedCheck(msgspec.Struct, frozen=True, kw_only=True):
    """Several podman events for one deployment within the debounce window: one check."""

    deployment: str


class ReconcilerIdle(msgspec.Struct, frozen=True, kw_only=True):
    """Everything of ``deployment`` was removed (the deletion at ``revision`` is done)."""

    deployment: str
    revision: int


class DesiredSynced(msgspec.Struct, frozen=True):
    """The desired feed read the device's entries from NATS for the first time."""


class Sweep(msgspec.Struct, frozen=True):
    """List the device's own containers (to find orphans)."""


class OwnedDeployments(msgspec.Struct, frozen=True, kw_only=True):
    """(deployment, highest revision label) of every deployment with a container here."""

    deployments: tuple[tuple[str, int], ...]


class HeartbeatTick(msgspec.Struct, frozen=True):
    pass


class ResyncTick(msgspec.Struct, frozen=True):
    pass


class ContainerChanged(msgspec.Struct, frozen=True, kw_only=True):
    """A runtime's drift event (a container died, was stopped or removed...)."""

    event: DriftEvent


class EventsBroken(msgspec.Struct, frozen=True, kw_only=True):
    """The drift stream of the runtime of ``score_type`` broke."""

    reason: str
    score_type: str = "podman"


class ReopenEvents(msgspec.Struct, frozen=True, kw_only=True):
    score_type: str = "podman"


class LabelsChanged(msgspec.Struct, frozen=True, kw_only=True):
    labels: dict[str, str]
