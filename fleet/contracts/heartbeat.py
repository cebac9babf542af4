"""The device-heartbeat value: proof of life, written by the agent every interval.

``seq`` increases by one per heartbeat within one agent run (it restarts at 0 when the
agent restarts), so a reader can tell a fresh beat from a replayed one. ``instance_id``
names that run (random, made at start): two processes beating under one device id
(a cloned disk, a copied config) show as two instance ids on one key, which both the
operator and the agents watch for. It is optional, so beats of older agents, which
carry none, still decode. This module must never do I/O.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

import msgspec

from fleet.errors import ContractError

from ._checks import Timestamp, device_id_field, int_field, utc_field
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


class HeartbeatPayload(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``device_id`` was alive ``at`` (UTC); the ``seq``-th beat of agent run ``instance_id``."""

    device_id: DeviceId
    at: Timestamp
    seq: Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 0})]
    instance_id: InstanceId | None = None

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
