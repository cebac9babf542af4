"""One pooled actor per device: what the operator knows of it, mirrored as a Device resource.

Why it exists: a user sees each device as ``kubectl get fleetdev``: its labels, inventory,
agent version, last heartbeat, whether it is online, and the phase of each deployment on
it. This actor keeps that picture for its device and hands every change to the mirror
(:mod:`.mirror`): it announces a change once (``MirrorDirty``) and sends its picture when
the mirror, which rate-limits the writes, pulls it (``MirrorPull``).

What it must never do: block (it runs on a shared pool of a few threads) or talk to
Kubernetes itself.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

import msgspec
import pykka

from fleet.contracts import DeploymentName, DeviceId, DeviceInfo
from fleet.runtime.pool import ActorPool
from fleet.runtime.pooled import PooledActor

from . import messages as m
from .status import rfc3339

logger = logging.getLogger(__name__)


class DeviceActor(PooledActor):
    def __init__(self, *, pool: ActorPool, device: DeviceId, mirror: pykka.ActorRef[Any]) -> None:
        super().__init__(pool=pool)
        self.device = device
        self._mirror = mirror
        self._info: DeviceInfo | None = None
        self._beat: datetime.datetime | None = None
        self._online = False
        self._phases: dict[DeploymentName, m.Report] = {}
        self._announced = False
        self._deleted = False

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, m.MirrorPull):
            self._announced = False
            if self._info is not None:
                self._mirror.tell(self._snapshot(self._info))
            elif self._deleted:
                self._mirror.tell(
                    m.MirrorDevice(device=self.device, labels=(), status=b"{}", delete=True)
                )
            return None
        if isinstance(message, m.DeviceInfoSeen):
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
            logger.warning("device %s: unexpected message %r", self.device, message)
            return None
        if (self._info is not None or self._deleted) and not self._announced:
            # Pull, not push: the mirror asks for the picture when it can write it, so a
            # burst of changes costs one snapshot per write, not one per change.
            self._announced = True
            self._mirror.tell(m.MirrorDirty(device=self.device, ref=self.actor_ref))
        return None

    def _snapshot(self, info: DeviceInfo) -> m.MirrorDevice:
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
        }
        if self._beat is not None:
            status["lastHeartbeat"] = rfc3339(self._beat)
        return m.MirrorDevice(
            device=self.device,
            labels=tuple(sorted(info.labels.items())),
            status=msgspec.json.encode(status),
        )
