"""The device-heartbeat value: proof of life, written by the agent every interval.

``seq`` increases by one per heartbeat within one agent run (it restarts at 0 when the
agent restarts), so a reader can tell a fresh beat from a replayed one. This module
must never do I/O.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from ._checks import Timestamp, device_id_field, int_field, utc_field
from .names import DeviceId


class HeartbeatPayload(msgspec.Struct, frozen=True, kw_only=True):
    """``device_id`` was alive ``at`` (UTC); the ``seq``-th beat of this agent run."""

    device_id: DeviceId
    at: Timestamp
    seq: Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 0})]

    def __post_init__(self) -> None:
        device_id_field(self, "device_id")
        utc_field(self, "at")
        int_field(self, "seq", low=0)
