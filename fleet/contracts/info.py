"""The device-info value: who a device is, what it has, and the labels it is selected by.

Written by the agent at ``info.<device>`` on start and when its labels change; the
operator matches Deployment selectors against ``labels`` (Kubernetes label rules, see
:mod:`.labels`). ``runtimes`` (optional) lists the score types the device can run; an
older agent leaves it out, and readers take that as ``["podman"]``
(:attr:`DeviceInfo.runnable`). This module must never do I/O.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from fleet.errors import ContractError, InvalidName

from ._checks import Timestamp, device_id_field, int_field, utc_field
from .labels import LABEL_RULE, check_labels
from .limits import MAX_LABELS, MAX_TEXT_LENGTH, check_length
from .names import DNS_LABEL_MAX, DNS_LABEL_PATTERN, DNS_LABEL_RULE, DeviceId, check_dns_label

MAX_RUNTIMES: Final = 16
"""Score types one device-info may list."""
DEFAULT_RUNTIMES: Final[tuple[str, ...]] = ("podman",)
"""What a device runs when its info lists no ``runtimes`` (an agent older than the field)."""

RuntimeName = Annotated[
    str,
    msgspec.Meta(
        description=f"A score type the device can run; {DNS_LABEL_RULE}.",
        extra_json_schema={
            "pattern": DNS_LABEL_PATTERN,
            "minLength": 1,
            "maxLength": DNS_LABEL_MAX,
        },
    ),
]


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


# omit_defaults concerns ``runtimes`` and ``runtime_versions`` only (no other field has a
# default): an info without them encodes as it always did.
class DeviceInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A device's identity, labels, inventory, agent version and the runtimes it has."""

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
    runtimes: (
        Annotated[
            list[RuntimeName],
            msgspec.Meta(
                description=(
                    "The score types this device can run, each once. Absent (an older "
                    "agent): podman only."
                ),
                extra_json_schema={"maxItems": MAX_RUNTIMES, "uniqueItems": True},
            ),
        ]
        | None
    ) = None
    runtime_versions: (
        Annotated[
            dict[RuntimeName, str],
            msgspec.Meta(
                description=(
                    "What each listed runtime drives, in words: its name and version, and "
                    "what a user must know (e.g. kvm: 'libvirt 9.0.0 (qemu 7.2.22, "
                    "emulation)': no hardware virtualization). Absent: not said."
                ),
                extra_json_schema={"maxProperties": MAX_RUNTIMES},
            ),
        ]
        | None
    ) = None

    def __post_init__(self) -> None:
        device_id_field(self, "device_id")
        check_length(self.labels, field="labels", limit=MAX_LABELS, what="labels")
        check_labels(self.labels)
        check_length(self.agent_version, field="agent_version", limit=MAX_TEXT_LENGTH)
        utc_field(self, "updated_at")
        if self.runtimes is not None:
            _check_runtimes(self.runtimes)
        if self.runtime_versions is not None:
            _check_runtime_versions(self.runtime_versions, self.runnable)

    @property
    def runnable(self) -> tuple[str, ...]:
        """The score types this device runs (``runtimes``, or podman when absent)."""
        return DEFAULT_RUNTIMES if self.runtimes is None else tuple(self.runtimes)


def _check_runtimes(runtimes: list[str]) -> None:
    check_length(runtimes, field="runtimes", limit=MAX_RUNTIMES, what="runtimes")
    seen: set[str] = set()
    for index, name in enumerate(runtimes):
        try:
            check_dns_label(name, what="runtime name")
        except InvalidName as exc:
            raise InvalidName(str(exc), field=f"runtimes[{index}]") from exc
        if name in seen:
            raise ContractError(f"runtime {name!r} is listed twice", field=f"runtimes[{index}]")
        seen.add(name)


def _check_runtime_versions(versions: dict[str, str], runnable: tuple[str, ...]) -> None:
    check_length(versions, field="runtime_versions", limit=MAX_RUNTIMES, what="runtimes")
    for name, text in versions.items():
        if name not in runnable:
            raise ContractError(
                f"runtime {name!r} has a version but is not one of the device's runtimes",
                field=f"runtime_versions.{name}"[:80],
            )
        check_length(text, field=f"runtime_versions.{name}", limit=MAX_TEXT_LENGTH)


_TEXT_FIELDS: tuple[str, ...] = (
    "hostname",
    "arch",
    "os",
    "kernel",
    "runtime_name",
    "runtime_version",
)
