"""The device-heartbeat value: proof of life, written by the agent every interval.

``seq`` increases by one per heartbeat within one agent run (it restarts at 0 when the
agent restarts), so a reader can tell a fresh beat from a replayed one. ``instance_id``
names that run (random, made at start): two processes beating under one device id
(a cloned disk, a copied config) show as two instance ids on one key, which both the
operator and the agents watch for. It is optional, so beats of older agents, which
carry none, still decode.

``health`` (optional, newer agents) is what this agent run has done since it started:
counters that never decrease within one ``instance_id`` (reconcile passes and failed ones,
image pulls and failed ones, drift repairs, desired-state re-reads). A reader that wants
fleet-wide figures adds up each device's increases, and takes a new instance's counters
as counted from 0. A counter left out is 0 (they are omitted when 0, to keep the beat
small: it is the most frequent value on the bus). This module must never do I/O.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

import msgspec

from fleet.errors import ContractError

from ._checks import Timestamp, device_id_field, int_field, utc_field
from .limits import MAX_INT
from .names import DeviceId

INSTANCE_ID_MAX: Final = 64
INSTANCE_ID_PATTERN: Final = r"^[A-Za-z0-9_-]+$"
_INSTANCE_ID: Final = re.compile(INSTANCE_ID_PATTERN)

InstanceId = Annotated[
    str,
    msgspec.Meta(
        description="One run of one agent process: 1..64 characters of A-Z a-z 0-9 _ -.",
        extra_json_schema={"pattern": INSTANCE_ID_PATTERN, "maxLength": INSTANCE_ID_MAX},
    ),
]


Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]

AGENT_HEALTH_COUNTERS: Final = (
    "reconciles",
    "reconcile_failures",
    "pulls",
    "pull_failures",
    "drift_repairs",
    "feed_rereads",
)
"""The fields of :class:`AgentHealth`, in order (:meth:`AgentHealth.counters`)."""


class AgentHealth(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What one agent run has done since it started; every field a counter."""

    reconciles: Count = 0
    """Reconcile passes (one deployment driven towards its desired state once)."""
    reconcile_failures: Count = 0
    """Passes that ended Failed or had to be retried."""
    pulls: Count = 0
    """Image pulls started."""
    pull_failures: Count = 0
    """Image pulls that failed."""
    drift_repairs: Count = 0
    """Passes, not asked for by a desired-state change, that had to touch a container
    (one removed, stopped or changed by hand, or exited for good)."""
    feed_rereads: Count = 0
    """Full re-reads of the device's desired state (periodic, or after a reconnect)."""

    def __post_init__(self) -> None:
        for name in AGENT_HEALTH_COUNTERS:
            int_field(self, name, low=0)

    def counters(self) -> tuple[int, ...]:
        """The counters in the order of :data:`AGENT_HEALTH_COUNTERS`."""
        return (
            self.reconciles, self.reconcile_failures, self.pulls, self.pull_failures,
            self.drift_repairs, self.feed_rereads,
        )  # fmt: skip


class HeartbeatPayload(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``device_id`` was alive ``at`` (UTC); the ``seq``-th beat of agent run ``instance_id``."""

    device_id: DeviceId
    at: Timestamp
    seq: Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 0})]
    instance_id: InstanceId | None = None
    health: AgentHealth | None = None

    def __post_init__(self) -> None:
        device_id_field(self, "device_id")
        utc_field(self, "at")
        int_field(self, "seq", low=0)
        if self.instance_id is not None and (
            not isinstance(self.instance_id, str)
            or len(self.instance_id) > INSTANCE_ID_MAX
            or _INSTANCE_ID.fullmatch(self.instance_id) is None
        ):
            raise ContractError(
                f"instance_id must be 1..{INSTANCE_ID_MAX} characters of A-Z a-z 0-9 _ -, "
                f"got {self.instance_id!r}",
                field="instance_id",
            )
        if self.health is not None and not isinstance(self.health, AgentHealth):
            raise ContractError(
                f"health must be an object of counters, got {type(self.health).__name__}",
                field="health",
            )
