"""A deployment's named volumes: made before the containers that mount them, kept
across replacements, removed with the deployment only when the score asked.

Why it exists: a volume outlives every container that mounts it (that is its point: a
camera's recordings survive an image update), so it cannot be podman's implicit volume
of one container. The agent makes it first, under its per-deployment name
(:func:`~fleet.runtime.podman.port.volume_name`), with the owner labels and whether it
goes with the deployment (fixed then: podman volumes' labels cannot change). Removal
reads that label, so a deletion finished after a restart (the score is gone by then)
still knows.

What it must never do: remove a volume without this device's and deployment's labels,
or one that was not marked to go with the deployment.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleet.contracts import ContainerSpec, DeploymentName, DeviceId
from fleet.runtime.podman.port import (
    REMOVE_WITH_DEPLOYMENT_LABEL,
    VOLUME_LABEL,
    ContainerFailed,
    ContainerRuntime,
    VolumeStore,
    owner_labels,
    volume_name,
)


class DeploymentVolumes:
    """The named volumes of one deployment on one device."""

    def __init__(
        self, runtime: ContainerRuntime, device: DeviceId, deployment: DeploymentName
    ) -> None:
        self._store = runtime if isinstance(runtime, VolumeStore) else None
        self._device, self._deployment = device, deployment
        self._labels = owner_labels(device, deployment)

    def ensure(self, specs: Iterable[ContainerSpec]) -> None:
        """Make every volume ``specs`` mount that does not exist yet (existing ones, and
        their data, stay as they are); :class:`ContainerFailed` says why not."""
        for spec in specs:
            for volume in spec.volumes or ():
                if volume.name is None:  # a host path: the device's own, never made here
                    continue
                if self._store is None:
                    raise ContainerFailed(
                        f"container {spec.name!r} mounts volume {volume.name!r}, and this "
                        "device's container runtime has no volumes"
                    )
                labels = {
                    **self._labels,
                    VOLUME_LABEL: volume.name,
                    REMOVE_WITH_DEPLOYMENT_LABEL: str(volume.remove_with_deployment).lower(),
                }
                name = volume_name(self._device, self._deployment, volume.name)
                self._store.ensure_volume(name, labels=labels)

    def remove_with_deployment(self) -> None:
        """Remove the deployment's volumes marked to go with it (the others stay)."""
        if self._store is None:
            return
        marked = {**self._labels, REMOVE_WITH_DEPLOYMENT_LABEL: "true"}
        for name, labels in self._store.list_volumes(labels=marked):
            if all(labels.get(k) == v for k, v in marked.items()):
                self._store.remove_volume(name)
