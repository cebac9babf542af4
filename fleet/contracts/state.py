"""The device-state value: what a device reports about one deployment on it.

Written by the agent at ``state.<device>.<deployment>`` on every phase change; read by
the operator to build each Deployment's aggregate. This module must never do I/O.
"""

from __future__ import annotations

import enum
from typing import Annotated, Final, Literal, TypeAlias, get_args

import msgspec

from fleet.errors import ContractError

from ._checks import Timestamp, deployment_field, device_id_field, int_field, utc_field
from .limits import MAX_MESSAGE_LENGTH, check_length
from .names import DeploymentName, DeviceId


class Phase(enum.StrEnum):
    """Where a deployment is on a device. The wire carries the value ("Running")."""

    PENDING = "Pending"
    PULLING = "Pulling"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    REMOVED = "Removed"
    FAILED = "Failed"


Health: TypeAlias = Literal["healthy", "unhealthy", "starting"]
HEALTH_VALUES: Final[tuple[str, ...]] = get_args(Health)


class DeploymentState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The phase of ``deployment`` on ``device_id``.

    ``desired_revision`` is the KV revision of the desired-state entry this state refers
    to, so a reader can tell a report about the current spec from one about an older spec.
    ``message`` says, for ``Failed``, what went wrong in words a person can act on.
    ``running_revision`` (optional) is the revision whose containers are actually running
    when that is not ``desired_revision``: an update whose image could not be pulled
    leaves the previous revision running (make-before-break), and says so here.
    ``health`` (optional) is what the containers' health checks say, when the score has
    any: ``unhealthy`` if one is, else ``starting`` if one is in its start period or not
    checked yet, else ``healthy``; the phase stays what it is (a Running deployment may
    be unhealthy). ``exit_code`` (optional) is how a container that ran and stays ended
    ended (``restart_policy: "no"``, or ``"on-failure"`` after a 0): ``0`` with
    ``Running`` (it did what it was for), non-zero with ``Failed``.
    """

    device_id: DeviceId
    deployment: DeploymentName
    phase: Phase
    desired_revision: Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 0})]
    message: (
        Annotated[str, msgspec.Meta(extra_json_schema={"maxLength": MAX_MESSAGE_LENGTH})] | None
    )
    updated_at: Timestamp
    running_revision: Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 0})] | None = None
    health: Health | None = None
    exit_code: (
        Annotated[int, msgspec.Meta(extra_json_schema={"minimum": -255, "maximum": 255})] | None
    ) = None

    def __post_init__(self) -> None:
        device_id_field(self, "device_id")
        deployment_field(self, "deployment")
        _phase_field(self)
        int_field(self, "desired_revision", low=0)
        if self.running_revision is not None:
            int_field(self, "running_revision", low=0)
        check_length(self.message, field="message", limit=MAX_MESSAGE_LENGTH)
        if self.health is not None and self.health not in HEALTH_VALUES:
            raise ContractError(
                f"health must be one of {', '.join(HEALTH_VALUES)}, got {self.health!r}",
                field="health",
            )
        if self.exit_code is not None:
            int_field(self, "exit_code", low=-255, high=255)
        utc_field(self, "updated_at")


def _phase_field(state: DeploymentState) -> None:
    value: object = state.phase  # a plain str when built from Python
    if isinstance(value, Phase):
        return
    try:
        msgspec.structs.force_setattr(state, "phase", Phase(str(value)))
    except ValueError as exc:
        allowed = ", ".join(phase.value for phase in Phase)
        raise ContractError(
            f"phase must be one of {allowed}, got {value!r}", field="phase"
        ) from exc
