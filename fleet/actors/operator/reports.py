"""One device's reports, and its class for each Deployment that targets it.

Why it exists: a device's report for a deployment (``state.<device>.<deployment>``) is
shown on its Device resource and decides its class in that Deployment's aggregate. The
device actor is the one keeper of its reports (and of its liveness, :mod:`.liveness`), so
it decides the class (:func:`.status.classify`) and tells each Deployment actor that
targets it when the class changes. A Deployment registers with ``Expect``, naming the
revision of its entry the device should report (None: none with the current content
yet); :class:`DeviceReports` keeps, per registration, that revision and the class last
sent, and answers what to send.

It also pre-checks for foreign writes: a report naming a revision newer than the one
expected (or any, while none is) is passed on (``Reported``) for the Deployment actor,
which keeps the entries, to judge; one that is not, needs no check.

Plain and synchronous: it returns ``(reply, value)`` pairs, its actor sends them.
What it must never do: stay silent on a new registration (the Deployment counts the
device ``pending`` until told, and may have counted it otherwise before), or send a class
that did not change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from fleet.contracts import DeploymentName, DeviceId

from .messages import Classified, Report, Reported
from .status import Class, class_of


class _Slot:
    """One deployment's report of this device, and that Deployment's registration."""

    __slots__ = ("message", "ref", "report", "revision", "sent", "unhealthy")

    def __init__(self) -> None:
        self.report: Report | None = None
        self.ref: Any = None  # the registered Deployment's reply channel (None: none)
        self.revision: int | None = None  # the revision it expects
        self.sent: Class | None = None  # the class last sent (None: nothing yet)
        self.message: str | None = None  # ... and its message
        self.unhealthy = False  # ... and whether it was running unhealthy


Send = tuple[Any, Classified | Reported]  # (a Deployment's reply channel, the value for it)


class DeviceReports:
    __slots__ = ("_slots", "device")

    def __init__(self, device: DeviceId, reports: Iterable[Report] = ()) -> None:
        self.device = device
        self._slots: dict[DeploymentName, _Slot] = {}
        for report in reports:
            if report.phase is not None:
                self._slot(report.deployment).report = report

    def _slot(self, deployment: DeploymentName) -> _Slot:
        slot = self._slots.get(deployment)
        if slot is None:
            slot = self._slots[deployment] = _Slot()
        return slot

    def _drop_if_empty(self, deployment: DeploymentName, slot: _Slot) -> None:
        if slot.report is None and slot.ref is None:
            del self._slots[deployment]

    def __len__(self) -> int:
        return sum(1 for slot in self._slots.values() if slot.report is not None)

    def __iter__(self) -> Iterator[Report]:
        """The reports, by deployment name."""
        slots = self._slots
        return (r for name in sorted(slots) if (r := slots[name].report) is not None)

    def get(self, deployment: DeploymentName) -> Report | None:
        slot = self._slots.get(deployment)
        return slot.report if slot is not None else None

    def report(self, report: Report, online: bool) -> Sequence[Send]:
        """A new report (phase None: deleted); what to send about it. (The hot path: a
        fleet's every report comes through here.)"""
        name, phase = report.deployment, report.phase
        slot = self._slots.get(name)
        if phase is None:
            if slot is None:
                return ()
            slot.report = None
            if slot.ref is None:
                del self._slots[name]
                return ()
        elif slot is None:
            self._slots[name] = slot = _Slot()
            slot.report = report
            return ()  # nobody targets it for that name (the fleet index forwards it)
        else:
            slot.report = report
            if slot.ref is None:
                return ()
        expected = slot.revision
        cls = class_of(online, expected, phase, report.desired_revision)
        message = report.message if cls == "failed" else None
        unhealthy = cls == "running" and report.unhealthy
        out: list[Send] | tuple[()] = ()
        if cls != slot.sent or message != slot.message or unhealthy != slot.unhealthy:
            slot.sent, slot.message, slot.unhealthy = cls, message, unhealthy
            out = [(slot.ref, Classified(device=self.device, cls=cls, message=message,
                                         revision=expected, unhealthy=unhealthy))]  # fmt: skip
        if phase is not None and (expected is None or report.desired_revision > expected):
            reported = Reported(device=self.device, revision=report.desired_revision)
            out = [*out, (slot.ref, reported)]
        return out

    def expect(
        self,
        deployment: DeploymentName,
        ref: Any,
        revision: int | None,
        online: bool,
        answer: bool = True,
    ) -> list[Send]:
        """``ref`` (a reply channel) targets this device and expects ``revision``; what to
        send it. A new registration is answered (``answer`` False: only if not
        ``pending``), and the report it may have missed is checked."""
        slot = self._slot(deployment)
        if slot.ref is not ref:  # a new registration (maybe a new owner's)
            slot.ref, slot.message = ref, None
            slot.sent = None if answer else "pending"  # what ref assumes until told
        slot.revision = revision
        out: list[Send] = []
        self._classify(slot, online, out)
        report = slot.report
        if report is not None and (revision is None or report.desired_revision > revision):
            out.append((ref, Reported(device=self.device, revision=report.desired_revision)))
        return out

    def unexpect(self, deployment: DeploymentName, ref: Any) -> None:
        slot = self._slots.get(deployment)
        if slot is not None and slot.ref is ref:  # not a newer owner's
            slot.ref, slot.revision, slot.sent, slot.message = None, None, None, None
            self._drop_if_empty(deployment, slot)

    def drop_ref(self, ref: Any) -> None:
        """That Deployment actor is gone: forget its registrations."""
        for name, slot in list(self._slots.items()):
            if slot.ref is ref:
                self.unexpect(name, ref)

    def classes(self, *, online: bool) -> list[Send]:
        """Every registration's class after a liveness change: those that changed."""
        out: list[Send] = []
        for slot in self._slots.values():
            if slot.ref is not None:
                self._classify(slot, online, out)
        return out

    def _classify(self, slot: _Slot, online: bool, out: list[Send]) -> None:
        report = slot.report
        if report is None:
            cls = class_of(online, slot.revision, None, -1)
        else:
            cls = class_of(online, slot.revision, report.phase, report.desired_revision)
        message = report.message if cls == "failed" and report is not None else None
        unhealthy = cls == "running" and report is not None and report.unhealthy
        if cls != slot.sent or message != slot.message or unhealthy != slot.unhealthy:
            slot.sent, slot.message, slot.unhealthy = cls, message, unhealthy
            classified = Classified(device=self.device, cls=cls, message=message,
                                    revision=slot.revision, unhealthy=unhealthy)  # fmt: skip
            out.append((slot.ref, classified))
