"""What a Device resource shows of one device: built from what its actor knows.

Why it exists: ``kubectl get fleetdev`` shows a device's labels, inventory, agent version,
last heartbeat, whether it is online, the phase of each deployment on it, a
``DuplicateDeviceId`` condition and whether it is ``stale``. :class:`DevicePicture` keeps
what the device actor is told for display only (its info, the duplicate condition, when
it was forgotten) and renders the whole picture with the facts the actor owns (its
reports and liveness) as one ``MirrorDevice`` message.

Status fields beyond the device's own picture: ``conditions`` (``DuplicateDeviceId``,
once raised: True while two agent instances beat interleaved under this id, False after
one beat alone for a liveness timeout), and ``stale``/``staleSince`` (set once, when the
device has been silent longer than the retention and the operator forgets it).

Plain and synchronous: no I/O. What it must never do: show a field Kubernetes' schema for
the Device does not have (deploy/crds/).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

import msgspec

from fleet.contracts import DeviceId, DeviceInfo

from .liveness import Liveness
from .messages import MirrorDevice, Report
from .status import rfc3339


def duplicate_condition(
    instances: tuple[str, ...] | None, previous: dict[str, Any] | None, *, now: datetime.datetime
) -> dict[str, Any] | None:
    """The ``DuplicateDeviceId`` condition after a change (None: never raised)."""
    since = rfc3339(now)
    if instances is not None:
        return {
            "type": "DuplicateDeviceId",
            "status": "True",
            "reason": "InstancesInterleaved",
            "message": f"agent instances {', '.join(instances)} beat interleaved under this "
            "device id: two or more processes use it (a cloned disk or config?)",
            "lastTransitionTime": since,
        }
    if previous is not None and previous["status"] == "True":
        return {
            "type": "DuplicateDeviceId",
            "status": "False",
            "reason": "OneInstance",
            "message": "one agent instance beat alone for a whole liveness timeout",
            "lastTransitionTime": since,
        }
    return previous


class DevicePicture:
    __slots__ = ("deleted", "device", "duplicate", "forgotten", "info", "shown")

    def __init__(self, device: DeviceId) -> None:
        self.device = device
        self.info: DeviceInfo | None = None
        self.deleted = False  # its info was deleted: so is its Device resource
        self.duplicate: dict[str, Any] | None = None
        self.forgotten: datetime.datetime | None = None
        self.shown = False  # there is a Device resource to write (or to delete)

    def set_info(self, info: DeviceInfo | None) -> None:
        self.info = info
        self.deleted = info is None
        self.shown = True

    def set_duplicate(self, instances: tuple[str, ...] | None) -> None:
        now = datetime.datetime.now(tz=datetime.UTC)
        self.duplicate = duplicate_condition(instances, self.duplicate, now=now)

    def render(self, *, liveness: Liveness, reports: Iterable[Report]) -> MirrorDevice | None:
        info = self.info
        if info is None:
            if not self.deleted:
                return None
            return MirrorDevice(device=self.device, labels=(), status=b"{}", delete=True)
        forgotten = self.forgotten
        status: dict[str, Any] = {
            "labels": dict(info.labels),
            "inventory": msgspec.to_builtins(info.inventory),
            "agentVersion": info.agent_version,
            "infoUpdatedAt": info.updated_at,
            "online": liveness.online and forgotten is None,
            "deployments": [
                {
                    "deployment": str(r.deployment),
                    "phase": str(r.phase),
                    "desiredRevision": r.desired_revision,
                    "message": r.message or "",
                    "updatedAt": rfc3339(r.updated_at) if r.updated_at is not None else "",
                }
                for r in reports
            ],
            "conditions": [self.duplicate] if self.duplicate is not None else [],
            "stale": forgotten is not None,
            # null removes it (a merge patch): a device heard from again is not stale
            "staleSince": rfc3339(forgotten) if forgotten is not None else None,
        }
        if liveness.when is not None:
            status["lastHeartbeat"] = rfc3339(liveness.when)
        return MirrorDevice(
            device=self.device,
            labels=tuple(sorted(info.labels.items())),
            status=msgspec.json.encode(status),
            final=forgotten is not None,
        )
