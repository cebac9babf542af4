"""The device-info value: who a device is, what it has, and the labels it is selected by.

Written by the agent at ``info.<device>`` on start and when its labels change; the
operator matches Deployment selectors against ``labels`` (Kubernetes label rules, see
:mod:`.labels`). This module must never do I/O.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from ._checks import Timestamp, device_id_field, int_field, utc_field
from .labels import LABEL_RULE, check_labels
from .limits import MAX_LABELS, MAX_TEXT_LENGTH, check_length
from .names import DeviceId


class Inventory(msgspec.Struct, frozen=True, kw_only=True):
    """What the device is: read from the machine and from its container runtime."""

    hostname: str
    arch: str
    os: str
    kernel: str
    cpus: Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 1})]
    memory_bytes: Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 0})]
    runtime_name: str
    runtime_version: str

    def __post_init__(self) -> None:
        int_field(self, "cpus", low=1)
        int_field(self, "memory_bytes", low=0)
        for field in _TEXT_FIELDS:
            check_length(getattr(self, field), field=field, limit=MAX_TEXT_LENGTH)


class DeviceInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A device's identity, labels, inventory and agent version."""

    device_id: DeviceId
    labels: Annotated[
        dict[str, str],
        msgspec.Meta(
            description=f"Each label is {LABEL_RULE}.",
            extra_json_schema={"maxProperties": MAX_LABELS},
        ),
    ]
    inventory: Inventory
    agent_version: str
    updated_at: Timestamp

    def __post_init__(self) -> None:
        device_id_field(self, "device_id")
        check_length(self.labels, field="labels", limit=MAX_LABELS, what="labels")
        check_labels(self.labels)
        check_length(self.agent_version, field="agent_version", limit=MAX_TEXT_LENGTH)
        utc_field(self, "updated_at")


_TEXT_FIELDS: tuple[str, ...] = (
    "hostname",
    "arch",
    "os",
    "kernel",
    "runtime_name",
    "runtime_version",
)
