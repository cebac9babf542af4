"""Which devices each Deployment targets: the join of every device's labels with every
selector.

Why it exists: targeting is a join between the whole fleet's labels and every active
Deployment's selector, so it needs every device's labels in one place: here, the one copy
the operator keeps of them (the device actor is told its info to show it on the Device
resource, and decides nothing with it). :class:`Targeting` holds the labels and, per
Deployment, the set it targets, and says what changes when labels or a selector change.
A Deployment whose spec is invalid keeps the targets it had (frozen, as its entries are).

Plain and synchronous: no I/O, no actors. What it must never do: match a device against
a selector more often than a change requires (a label change costs one match per active
Deployment; a new selector one match per device).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from typing import NamedTuple

from fleet.contracts import DeviceId

from .ownership import DeploymentKey
from .selectors import LabelSelector

_NONE: frozenset[DeviceId] = frozenset()


class Changes(NamedTuple):
    added: list[DeviceId]
    removed: list[DeviceId]


class Targeting:
    def __init__(self) -> None:
        self._labels: dict[DeviceId, Mapping[str, str]] = {}
        self._targeted: dict[DeploymentKey, set[DeviceId]] = {}

    def __len__(self) -> int:
        """Devices with labels (announced, not deleted, not forgotten)."""
        return len(self._labels)

    def labels(self, device: DeviceId) -> Mapping[str, str] | None:
        return self._labels.get(device)

    def set_labels(self, device: DeviceId, labels: Mapping[str, str] | None) -> bool:
        """Record ``device``'s labels (None: it has none any more); whether they changed."""
        old = self._labels.get(device)
        if labels is None:
            self._labels.pop(device, None)
        else:
            self._labels[device] = labels
        return old != labels

    def targets(self, key: DeploymentKey) -> frozenset[DeviceId]:
        return frozenset(self._targeted.get(key, ()))

    def targeted(self, key: DeploymentKey) -> Container[DeviceId]:
        """``key``'s targets, not copied: for membership tests only."""
        return self._targeted.get(key, _NONE)

    def target(self, key: DeploymentKey, selector: LabelSelector | None) -> set[DeviceId]:
        """Match every device against ``selector`` (None: an invalid spec, whose targets
        stay as they were) and remember the result as ``key``'s targets."""
        if selector is None:
            targets = set(self._targeted.get(key, ()))
        else:
            targets = {d for d, labels in self._labels.items() if selector.matches(labels)}
        self._targeted[key] = targets
        return set(targets)

    def drop(self, key: DeploymentKey) -> None:
        self._targeted.pop(key, None)

    def retarget(
        self, devices: Iterable[DeviceId], selectors: Mapping[DeploymentKey, LabelSelector]
    ) -> dict[DeploymentKey, Changes]:
        """``devices``' labels changed: what each Deployment in ``selectors`` (the active
        ones with a valid spec) gains and loses."""
        devices = list(devices)
        out: dict[DeploymentKey, Changes] = {}
        for key, selector in selectors.items():
            targeted = self._targeted.setdefault(key, set())
            changes = Changes([], [])
            for device in devices:
                labels = self._labels.get(device)
                match = labels is not None and selector.matches(labels)
                if match and device not in targeted:
                    targeted.add(device)
                    changes.added.append(device)
                elif not match and device in targeted:
                    targeted.discard(device)
                    changes.removed.append(device)
            if changes.added or changes.removed:
                out[key] = changes
        return out
