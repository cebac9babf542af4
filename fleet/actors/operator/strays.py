"""Heartbeats and reports of device ids that have no device actor (yet).

Why it exists: a device gets an actor (and a Device resource) only once it announced
itself (device-info), so that 100,000 made-up ids in the heartbeat or state bucket cost a
few fields each, not an actor. Until then its last heartbeat and its reports wait here;
when it announces itself, its new actor takes them (:meth:`Strays.take`) and from then on
is their only keeper. The retention forgets a stray like any device (:meth:`drop`).

Plain and synchronous: no I/O, no actors. What it must never do: keep anything of a
device once its actor took it.
"""

from __future__ import annotations

from fleet.contracts import DeploymentName, DeviceId

from .messages import Beat, Report


class Strays:
    def __init__(self) -> None:
        self._beats: dict[DeviceId, Beat] = {}
        self._reports: dict[DeviceId, dict[DeploymentName, Report]] = {}

    @property
    def beats(self) -> int:
        """Ids with a heartbeat kept here."""
        return len(self._beats)

    def __contains__(self, device: object) -> bool:
        return device in self._beats or device in self._reports

    def beat(self, beat: Beat) -> None:
        if beat.when is None:
            self._beats.pop(beat.device, None)
        else:
            self._beats[beat.device] = beat

    def report(self, report: Report) -> None:
        if report.phase is not None:
            self._reports.setdefault(report.device, {})[report.deployment] = report
            return
        reports = self._reports.get(report.device)
        if reports is not None:
            reports.pop(report.deployment, None)
            if not reports:
                del self._reports[report.device]

    def take(self, device: DeviceId) -> tuple[Beat | None, tuple[Report, ...]]:
        """Everything kept of ``device``, no longer kept here."""
        reports = self._reports.pop(device, {})
        return self._beats.pop(device, None), tuple(reports.values())

    def drop(self, device: DeviceId) -> None:
        self._beats.pop(device, None)
        self._reports.pop(device, None)
