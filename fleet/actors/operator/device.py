"""One pooled actor per device: what the operator knows of it, mirrored as a Device resource.

Why it exists: a user sees each device as ``kubectl get fleetdev``: its labels, inventory,
agent version, last heartbeat, whether it is online, and the phase of each deployment on
it. This actor keeps that picture for its device and hands every change to the mirror
(:mod:`.mirror`): it announces a change once (``MirrorDirty``) and sends its picture when
the mirror, which rate-limits the writes, pulls it (``MirrorPull``).

It exists only for a device that announced itself (device-info): heartbeats and reports
of an unknown id cost the fleet index a few fields, not an actor. The index seeds it with
what it knew before (last heartbeat, online, reports, a duplicate flag).

Status fields beyond the device's own picture: ``conditions`` (``DuplicateDeviceId``,
once raised: True while two agent instances beat interleaved under this id, False after
one beat alone for a liveness timeout), and ``stale``/``staleSince`` (set once, when the
device has been silent longer than the retention and the operator forgets it: then this
actor sends its last picture, marked, and stops).

What it must never do: block (it runs on a shared pool of a few threads) or talk to
Kubernetes itself.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from typing import Any

import msgspec
import pykka

from fleet.contracts import DeploymentName, DeviceId, DeviceInfo
from fleet.runtime.actorkit.pool import ActorPool
from fleet.runtime.actorkit.pooled import PooledActor

from . import messages as m
from .status import rfc3339

logger = logging.getLogger(__name__)


class DeviceActor(PooledActor):
    def __init__(
        self,
        *,
        pool: ActorPool,
        device: DeviceId,
        mirror: pykka.ActorRef[Any],
        beat: datetime.datetime | None = None,
        online: bool = False,
        reports: Iterable[m.Report] = (),
        duplicate: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(pool=pool)
        self.device = device
        self._mirror = mirror
        self._info: DeviceInfo | None = None
        self._beat = beat
        self._online = online
        self._phases: dict[DeploymentName, m.Report] = {
            r.deployment: r for r in reports if r.phase is not None
        }
        self._duplicate: dict[str, Any] | None = None
        self._announced = False
        self._deleted = False
        self._forgotten: m.DeviceForgotten | None = None
        if duplicate is not None:
            self._set_duplicate(duplicate)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, m.MirrorPull):
            self._announced = False
            if self._info is not None:
                self._mirror.tell(self._snapshot(self._info))
            elif self._deleted:
                self._mirror.tell(
                    m.MirrorDevice(device=self.device, labels=(), status=b"{}", delete=True)
                )
            if self._forgotten is not None:
                self.stop()  # its last picture is with the mirror
            return None
        if self._forgotten is not None:
            return None  # forgotten: a newer actor of the same id takes what comes
        if isinstance(message, m.DeviceForgotten):
            self._forgotten = message
            self._online = False
            if self._info is None:
                self.stop()  # no Device resource to mark
                return None
        elif not self._apply(message):
            logger.warning("device %s: unexpected message %r", self.device, message)
            return None
        if (self._info is not None or self._deleted) and not self._announced:
            # Pull, not push: the mirror asks for the picture when it can write it, so a
            # burst of changes costs one snapshot per write, not one per change.
            self._announced = True
            self._mirror.tell(m.MirrorDirty(device=self.device, ref=self.actor_ref))
        return None

    def _apply(self, message: Any) -> bool:
        if isinstance(message, m.DeviceDuplicate):
            self._set_duplicate(message.instances)
        elif isinstance(message, m.DeviceInfoSeen):
            self._info = message.info
            self._deleted = message.info is None
        elif isinstance(message, m.DeviceBeat):
            self._beat = message.at
        elif isinstance(message, m.DeviceOnline):
            self._online = message.online
        elif isinstance(message, m.DevicePhase):
            report = message.report
            if report.phase is None:
                self._phases.pop(report.deployment, None)
            else:
                self._phases[report.deployment] = report
        else:
            return False
        return True

    def _set_duplicate(self, instances: tuple[str, ...] | None) -> None:
        now = rfc3339(datetime.datetime.now(tz=datetime.UTC))
        if instances is not None:
            self._duplicate = {
                "type": "DuplicateDeviceId",
                "status": "True",
                "reason": "InstancesInterleaved",
                "message": f"agent instances {', '.join(instances)} beat interleaved under "
                f"this device id: two or more processes use it (a cloned disk or config?)",
                "lastTransitionTime": now,
            }
        elif self._duplicate is not None and self._duplicate["status"] == "True":
            self._duplicate = {
                "type": "DuplicateDeviceId",
                "status": "False",
                "reason": "OneInstance",
                "message": "one agent instance beat alone for a whole liveness timeout",
                "lastTransitionTime": now,
            }

    def _snapshot(self, info: DeviceInfo) -> m.MirrorDevice:
        forgotten = self._forgotten
        status: dict[str, Any] = {
            "labels": dict(info.labels),
            "inventory": msgspec.to_builtins(info.inventory),
            "agentVersion": info.agent_version,
            "infoUpdatedAt": info.updated_at,
            "online": self._online,
            "deployments": [
                {
                    "deployment": str(name),
                    "phase": str(r.phase),
                    "desiredRevision": r.desired_revision,
                    "message": r.message or "",
                    "updatedAt": rfc3339(r.updated_at) if r.updated_at is not None else "",
                }
                for name, r in sorted(self._phases.items())
            ],
            "conditions": [self._duplicate] if self._duplicate is not None else [],
            "stale": forgotten is not None,
            # null removes it (a merge patch): a device heard from again is not stale
            "staleSince": rfc3339(forgotten.at) if forgotten is not None else None,
        }
        if self._beat is not None:
            status["lastHeartbeat"] = rfc3339(self._beat)
        return m.MirrorDevice(
            device=self.device,
            labels=tuple(sorted(info.labels.items())),
            status=msgspec.json.encode(status),
            final=forgotten is not None,
        )
