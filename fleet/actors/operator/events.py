"""Which Kubernetes Events the operator posts, decided from what its actors already know.

Why it exists: ``kubectl describe fleetdep web`` should say when the Deployment became
Ready, when it stopped being Ready and why, that devices failed (how many, which), that
its name is taken or its spec invalid, that a rollout halted; ``kubectl describe fleetdev
pi-01`` when the device went unreachable and came back. These rules turn changes of state
into :class:`~fleet.runtime.kube.events.EventNote` values for the ``EventsPort``:

* :class:`DeploymentEvents` compares each status a Deployment actor patched (at most one per
  status interval; told once the API server took it, so an Event never runs ahead of the
  status) with the last one it saw, seeded from the status the object carries, so an
  operator restart does not tell again what the status already says;
* :class:`DeviceEvents` hears a device actor's liveness changes: unreachable (it was
  online), reachable again (it had been seen unreachable: a new device, or one online when
  the operator starts, is not "back"), and two agents beating under its id.

Every reason, its type and when it fires: docs/operator.md, "Events". The runtime
coalesces and rate-limits (one note per object and reason per interval), so a failure
count that changes at every status costs one Event per interval.

Plain and synchronous: no I/O. What it must never do: post once per device per
Deployment (a Deployment's failures are one note naming the count and a few ids), or post
what did not change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec

from fleet.contracts.limits import MAX_DEPTH, json_depth
from fleet.runtime.kube.client import KubeObject
from fleet.runtime.kube.events import EventNote, EventType, ObjectRef

from .mirror import device_resource_name
from .ports import EventsPort

API_VERSION: Final = "fleet.nationtech.io/v1alpha1"
SHOWN_DEVICES: Final = 5
IGNORED: Final = frozenset(("Syncing", "Deleting"))  # says nothing about the fleet
OWN_EVENT: Final = frozenset(("InvalidSpec", "NameConflict"))  # an Event of their own
QUIET_NOT_READY: Final = frozenset(("Writing",))  # a new spec being written: Normal
HALTING: Final = {"Halted": "RolloutHalted", "RolledBack": "RolledBack"}


class _Condition(msgspec.Struct):
    type: str = ""
    status: str = ""
    reason: str = ""
    message: str = ""


class _Rollout(msgspec.Struct):
    phase: str = ""


class _Status(msgspec.Struct, rename="camel"):
    conditions: list[_Condition] = []
    aggregate: dict[str, int] = {}
    failing_devices: list[dict[str, str]] = []
    rollout: _Rollout | None = None


_DECODE: Final = msgspec.json.Decoder(_Status)
Ready = tuple[str, str, str]  # (status, reason, message)
Failed = tuple[int, tuple[str, ...]]  # (failed count, the first ids)


class DeploymentEvents:
    """One Deployment's Events, from the statuses its actor builds."""

    def __init__(self, events: EventsPort, *, clock: Callable[[], float] = time.time) -> None:
        self._events = events
        self._clock = clock
        self._seeded = False
        self._ready: Ready | None = None
        self._failed: Failed | None = None
        self._phase: str | None = None

    def seed(self, obj: KubeObject) -> None:
        """Before the first status: what ``obj``'s status (as last patched) already says."""
        if self._seeded:
            return
        self._seeded = True
        status = _read_status(obj.status)
        if status is not None:
            self._see(status)

    def status(self, obj: KubeObject, status: Mapping[str, Any]) -> None:
        """A status was built for ``obj``: post what changed since the last one."""
        self._seeded = True
        ref = ObjectRef(api_version=API_VERSION, kind="Deployment", name=obj.name,
                        namespace=obj.namespace, uid=obj.uid)  # fmt: skip
        ready = _ready_of(status.get("conditions") or ())
        if ready is not None and ready[1] not in IGNORED:
            self._on_ready(ref, ready)
        self._on_failed(ref, status)
        rollout = status.get("rollout")
        if isinstance(rollout, Mapping):
            phase = str(rollout.get("phase", ""))
            if phase != self._phase and phase in HALTING:
                reason = str(rollout.get("reason") or phase)
                self._post(ref, "Warning", HALTING[phase],
                           f"revision {rollout.get('revision')}: {reason}")  # fmt: skip
            self._phase = phase

    def _on_ready(self, ref: ObjectRef, ready: Ready) -> None:
        before, self._ready = self._ready, ready
        status, reason, message = ready
        if status == "True":
            if before is None or before[0] != "True":
                self._post(ref, "Normal", "Ready", message)
        elif before is not None and before[0] == "True" and reason not in OWN_EVENT:
            kind: EventType = "Normal" if reason in QUIET_NOT_READY else "Warning"
            self._post(ref, kind, "NotReady", f"{reason}: {message}")
        if reason in OWN_EVENT and (before is None or before[1:] != ready[1:]):
            self._post(ref, "Warning", reason, message)

    def _on_failed(self, ref: ObjectRef, status: Mapping[str, Any]) -> None:
        aggregate = status.get("aggregate") or {}
        failed = int(aggregate.get("failed", 0))
        failing = status.get("failingDevices") or []
        now: Failed | None = None
        if failed > 0:
            now = (failed, tuple(str(d.get("device", "")) for d in failing[:SHOWN_DEVICES]))
        before, self._failed = self._failed, now
        if now is None or now == before:
            return
        ids = ", ".join(now[1])
        more = f" and {failed - len(now[1])} more" if failed > len(now[1]) else ""
        first = failing[0] if failing else {}
        why = f"; {first.get('device')}: {first.get('message')}" if first.get("message") else ""
        targeted = int(aggregate.get("targeted", failed))
        self._post(ref, "Warning", "DevicesFailed",
                   f"{failed} of {targeted} targeted devices failed: {ids}{more}{why}")  # fmt: skip

    def _see(self, status: _Status) -> None:
        ready = _ready_of(msgspec.to_builtins(status.conditions))
        if ready is not None and ready[1] not in IGNORED:
            self._ready = ready
        failed = status.aggregate.get("failed", 0)
        if failed > 0:
            ids = tuple(str(d.get("device", "")) for d in status.failing_devices[:SHOWN_DEVICES])
            self._failed = (failed, ids)
        if status.rollout is not None:
            self._phase = status.rollout.phase

    def _post(self, ref: ObjectRef, kind: EventType, reason: str, message: str) -> None:
        self._events.post(EventNote(obj=ref, type=kind, reason=reason, message=message,
                                    at=self._clock()))  # fmt: skip


def _ready_of(conditions: Any) -> Ready | None:
    for condition in conditions:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return (str(condition.get("status", "")), str(condition.get("reason", "")),
                    str(condition.get("message", "")))  # fmt: skip
    return None


def _read_status(data: bytes) -> _Status | None:
    """The status as read with the object (None: none, or not one this reads)."""
    if data in (b"", b"null") or json_depth(data) > MAX_DEPTH:
        return None
    try:
        return _DECODE.decode(data)
    except (msgspec.DecodeError, ValueError):
        return None  # someone else's status: say everything anew


class DeviceEvents:
    """One device's Events, from its actor's liveness and duplicate changes."""

    __slots__ = ("_clock", "_device", "_events", "_was_offline")  # one per device: small

    def __init__(
        self, device: str, events: EventsPort, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._events = events
        self._clock = clock
        self._device = device
        self._was_offline = False  # seen unreachable after a heartbeat (so "back" means it)

    def liveness(self, *, online: bool, changed: bool, known: bool, timeout: float) -> None:
        """After a heartbeat or a check: ``changed`` whether ``online`` flipped, ``known``
        whether a heartbeat is known (an offline device without one is not "back" later:
        it is new)."""
        if not changed:
            if not online and known:
                self._was_offline = True  # already silent when first seen
            return
        if online:
            if self._was_offline:
                self._post("Normal", "DeviceReachable", "heartbeating again")
            self._was_offline = False
        else:
            self._was_offline = True
            self._post("Warning", "DeviceUnreachable",
                       f"no heartbeat for more than {timeout:g} s")  # fmt: skip

    def duplicate(self, instances: tuple[str, ...] | None) -> None:
        if instances is not None:
            self._post("Warning", "DuplicateDeviceId", f"agent instances {', '.join(instances)} "
                       "beat interleaved under this device id")  # fmt: skip

    def _post(self, kind: EventType, reason: str, message: str) -> None:
        ref = ObjectRef(api_version=API_VERSION, kind="Device",
                        name=device_resource_name(self._device))  # fmt: skip
        self._events.post(EventNote(obj=ref, type=kind, reason=reason, message=message,
                                    at=self._clock()))  # fmt: skip
