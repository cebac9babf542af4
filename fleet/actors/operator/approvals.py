"""Which labels target an enrolled device: the approved ones, never what it says of itself.

Why it exists: with enrollment on (docs/security.md), a device writes its own
``device-info``, labels included, and a device that could pick its labels could pick its
workloads (and, with per-device secrets, another site's secrets). The labels approved at
enrollment (the request's, within its token's) are kept in the Device resource's
``spec.labels``; a person changes them there. :class:`LabelApprovals` holds both sides
for the fleet index and answers, for each device, the labels it is targeted by:

* enforcement off (no enrollment): what the device reports, as always;
* approved labels kept: those, whatever the device reports (a difference is logged, once
  per reported value);
* no approval kept (a Device enrolled before labels were kept, or none at all): what it
  reports, with a warning once;
* ``spec.labels`` invalid: nothing (the device is not targeted until it is fixed);
* a device that has not announced itself, or was forgotten: nothing.

Pure: no actors, no I/O; the fleet index calls it and applies the answers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from fleet.contracts import DeviceId
from fleet.contracts.labels import check_labels
from fleet.contracts.limits import check_json_bounds
from fleet.errors import ContractError
from fleet.runtime.kube.client import KubeObject

from .selectors import shown

logger = logging.getLogger(__name__)

Labels = Mapping[str, str]
ApprovalState = Literal["approved", "absent", "invalid"]


class Approval(msgspec.Struct, frozen=True, kw_only=True):
    """What a Device resource says of its device's labels."""

    device: DeviceId
    state: ApprovalState
    labels: tuple[tuple[str, str], ...] = ()
    reason: str = ""  # why ``invalid``


class LabelApprovals:
    def __init__(self, *, enforced: bool) -> None:
        self.enforced = enforced
        self._approved: dict[DeviceId, Approval] = {}
        self._reported: dict[DeviceId, Labels] = {}
        self._warned: dict[DeviceId, Labels | str] = {}

    def targeted_by(self, device: DeviceId) -> Labels | None:
        """The labels ``device`` is targeted by; None: it is not targeted. Enforced only:
        otherwise :meth:`report` answers alone and nothing is kept."""
        reported = self._reported.get(device)
        if reported is None or not self.enforced:
            return reported
        approval = self._approved.get(device)
        if approval is None or approval.state == "absent":
            self._warn(device, "absent", "no approved labels kept (its Device has no "
                       "spec.labels): targeted by the labels it reports")  # fmt: skip
            return reported
        if approval.state == "invalid":
            self._warn(device, approval.reason, f"its Device's spec.labels are invalid "
                       f"({approval.reason}): not targeted until they are fixed")  # fmt: skip
            return None
        approved = dict(approval.labels)
        if dict(reported) != approved:
            self._warn(device, reported, f"reports labels {dict(reported)} that are not its "
                       f"approved {approved}: targeted by the approved ones (change them in "
                       "its Device's spec.labels)")  # fmt: skip
        return approved

    def report(self, device: DeviceId, labels: Labels | None) -> Labels | None:
        """The device's own labels (None: its info is gone, or it was forgotten); the
        labels it is now targeted by."""
        if not self.enforced:  # they are the targeting labels: nothing to keep here
            return labels
        if labels is None:
            self._reported.pop(device, None)
            self._warned.pop(device, None)
        else:
            self._reported[device] = labels
        return self.targeted_by(device)

    def approve(self, approvals: tuple[Approval, ...], *, listed: bool) -> list[DeviceId]:
        """Approvals seen (``listed``: all there are); the devices whose labels may have
        changed."""
        touched = [a.device for a in approvals]
        if listed:
            touched += [d for d in self._approved if d not in {a.device for a in approvals}]
            self._approved = {}
        for approval in approvals:
            if approval.state == "absent":
                self._approved.pop(approval.device, None)
            else:
                self._approved[approval.device] = approval
            self._warned.pop(approval.device, None)
        return touched

    def _warn(self, device: DeviceId, what: Labels | str, message: str) -> None:
        if self._warned.get(device) != what:
            self._warned[device] = what
            logger.warning("device %s: %s", device, message)


_MAX_SPEC_BYTES = 64 * 1024  # a Device's spec: an id, a key, at most 64 labels


class _DeviceSpec(msgspec.Struct, rename="camel"):
    device_id: str = ""
    labels: Any = None


def approval(obj: KubeObject, *, deleted: bool = False) -> Approval | None:
    """What a Device resource says of its device's approved labels (None: a Device whose
    device id is not one: nothing targets it anyway)."""
    try:
        check_json_bounds(obj.spec, what="spec", max_bytes=_MAX_SPEC_BYTES)
        spec = msgspec.json.decode(obj.spec, type=_DeviceSpec)
    except (ContractError, msgspec.DecodeError, RecursionError) as exc:
        device = _device_or_none(obj.name)
        if device is None:
            return None
        return Approval(device=device, state="invalid", reason=f"spec unreadable: {exc}")
    device = _device_or_none(spec.device_id or obj.name)
    if device is None:
        return None
    if deleted or spec.labels is None:
        return Approval(device=device, state="absent")
    return _checked(device, spec.labels)


def _checked(device: DeviceId, labels: object) -> Approval:
    if not isinstance(labels, dict):
        why = f"spec.labels must be an object, got {shown(labels)}"
        return Approval(device=device, state="invalid", reason=why)
    try:
        check_labels(labels, field="spec.labels")
    except ContractError as exc:
        return Approval(device=device, state="invalid", reason=str(exc))
    return Approval(device=device, state="approved", labels=tuple(sorted(labels.items())))


def _device_or_none(text: str) -> DeviceId | None:
    try:
        return DeviceId.try_new(text)
    except ContractError:
        return None
