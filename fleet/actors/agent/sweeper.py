"""Finds the device's own workloads, so that those of a deployment that is gone are removed.

Why it exists: ``fleetctl delete`` of a three-container deployment, then SIGKILL of the
agent a second later, left containers running for good: nothing on the device
remembered them. The device actor asks this actor to :class:`~.messages.Sweep` (once the
desired state was read from NATS, then on every resync); it asks every runtime for the
deployments it holds units of on this device (``WorkloadRuntime.deployments``: for
podman, every container labelled as this device's own, ``managed-by`` and ``device``, see
:func:`~fleet.runtime.podman.port.owner_labels`) and tells back, per deployment, the
highest revision its units were created for. The device actor, which owns the desired
state, decides which of those are orphans and has their reconcilers remove them.

It is an actor of its own so that a slow runtime never delays the device actor (which
also sends the heartbeats).

What it must never do: remove or change a unit itself, or report one without this
device's labels.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import pykka

from fleet.contracts import DeviceId
from fleet.errors import FleetError
from fleet.runtime.actorkit.failfast import SupervisedActor

from .messages import OwnedDeployments, Sweep
from .runtimes.registry import RuntimeRegistry

logger = logging.getLogger(__name__)


class OrphanSweeper(SupervisedActor):
    # A podman call stuck past the stop timeout must not keep the process alive.
    use_daemon_thread = True

    def __init__(
        self, *, device_id: DeviceId, runtimes: RuntimeRegistry, parent: pykka.ActorRef[Any]
    ) -> None:
        super().__init__()
        self._device = device_id
        self._runtimes = runtimes
        self._parent = parent

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Sweep):
            self._sweep()
        return None

    def _sweep(self) -> None:
        deployments: dict[str, int] = {}
        for runtime in self._runtimes:
            try:
                found = runtime.deployments()
            except FleetError as exc:  # its service away: the next resync looks again
                logger.info(
                    "orphan sweep of %s (%s) skipped: %s", self._device, runtime.score_type, exc
                )
                continue
            for deployment, revision in found.items():
                deployments[deployment] = max(deployments.get(deployment, 0), revision)
        logger.debug("swept %s: containers of %s", self._device, sorted(deployments))
        with contextlib.suppress(pykka.ActorDeadError):  # the agent is stopping
            self._parent.tell(OwnedDeployments(deployments=tuple(sorted(deployments.items()))))
