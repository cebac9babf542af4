"""A Deployment's aggregate and the status a user sees with ``kubectl get fleetdep``.

Every targeted device is in exactly one class, so ``targeted = running + pending +
failed + unreachable`` holds by construction:

* ``unreachable``: its last heartbeat is older than the liveness timeout (or it never
  sent one). It counts only there, whatever it last reported;
* ``running`` / ``failed``: its latest report says Running / Failed *for the desired
  entry currently written for it* (the report's ``desired_revision`` equals the entry's
  KV revision);
* ``pending``: the rest (no entry yet, no report yet, a report about an older entry,
  or any other phase).

``unhealthy`` is counted apart, not as a class: the ``running`` devices whose report
says their health checks fail (issue 14; the classes, and the seven phases, stay).

Pure: no I/O, no actors.
"""

from __future__ import annotations

import datetime
import heapq
from collections.abc import Mapping
from typing import Any, Final, Literal

from fleet.contracts import DeviceId, Phase

Class = Literal["running", "pending", "failed", "unreachable"]
CLASSES: Final[tuple[Class, ...]] = ("running", "pending", "failed", "unreachable")
SETTLED: Final = frozenset(("running", "failed"))
"""The classes decided against one particular entry (the others hold for any)."""
FAILING_MAX: Final = 10
MESSAGE_MAX: Final = 256
CONDITION_MESSAGE_MAX: Final = 1024  # a reason quoting a hostile spec stays readable


def classify(*, online: bool, revision: int | None, phase: Phase | None, reported: int) -> Class:
    """The class of one targeted device (the rule above)."""
    return class_of(online, revision, phase, reported)


def class_of(online: bool, revision: int | None, phase: Phase | None, reported: int) -> Class:
    """:func:`classify` with positional arguments, for the device actors' hot path."""
    if not online:
        return "unreachable"
    if revision is None or phase is None or reported != revision:
        return "pending"
    if phase is _RUNNING:
        return "running"
    if phase is _FAILED:
        return "failed"
    return "pending"


_RUNNING: Final = Phase.RUNNING
_FAILED: Final = Phase.FAILED


class Aggregate:
    """Per-device classes and their counts, updated one device at a time, with the
    message of each failed device (what ``failingDevices`` shows)."""

    def __init__(self) -> None:
        self._classes: dict[DeviceId, Class] = {}
        self._counts: dict[Class, int] = dict.fromkeys(CLASSES, 0)
        self.failed: dict[DeviceId, str | None] = {}
        self.unhealthy: set[DeviceId] = set()  # running, health checks failing
        self._shows_unhealthy = False  # once one was, the count stays shown (0 included)

    def __contains__(self, device: object) -> bool:
        return device in self._classes

    def get(self, device: DeviceId) -> Class | None:
        return self._classes.get(device)

    def set(
        self, device: DeviceId, cls: Class, message: str | None = None, *, unhealthy: bool = False
    ) -> bool:
        old = self._classes.get(device)
        was = device in self.unhealthy
        if unhealthy and cls == "running":
            self.unhealthy.add(device)
            self._shows_unhealthy = True
        else:
            self.unhealthy.discard(device)
        if cls == "failed":
            self.failed[device] = message
        elif old == "failed":
            del self.failed[device]
        if old == cls:
            return was != (device in self.unhealthy)
        if old is not None:
            self._counts[old] -= 1
        self._classes[device] = cls
        self._counts[cls] += 1
        return True

    def remove(self, device: DeviceId) -> bool:
        old = self._classes.pop(device, None)
        if old is None:
            return False
        self._counts[old] -= 1
        self.failed.pop(device, None)
        self.unhealthy.discard(device)
        return True

    def clear(self) -> None:
        self._classes.clear()
        self._counts = dict.fromkeys(CLASSES, 0)
        self.failed.clear()
        self.unhealthy.clear()

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {"targeted": len(self._classes)}
        for cls, count in self._counts.items():
            counts[cls] = count
        if self._shows_unhealthy:  # left out until one is, as before health checks
            counts["unhealthy"] = len(self.unhealthy)
        return counts

    def failing(self) -> list[dict[str, str]]:
        """At most :data:`FAILING_MAX` failed devices, by id, with their messages."""
        return [
            {"device": str(d), "message": (self.failed[d] or "")[:MESSAGE_MAX]}
            for d in heapq.nsmallest(FAILING_MAX, self.failed)
        ]


def rfc3339(at: datetime.datetime) -> str:
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339() -> str:
    return rfc3339(datetime.datetime.now(tz=datetime.UTC))


def ready_condition(
    *,
    status: str,
    reason: str,
    message: str,
    generation: int,
    previous: Mapping[str, Any] | None,
    type: str = "Ready",  # the condition's field
) -> dict[str, Any]:
    """A condition (``Ready`` unless ``type`` says otherwise); ``lastTransitionTime``
    moves only when ``status`` does."""
    since = now_rfc3339()
    if previous is not None and previous.get("status") == status:
        since = str(previous.get("lastTransitionTime") or since)
    return {
        "type": type,
        "status": status,
        "reason": reason,
        "message": message
        if len(message) <= CONDITION_MESSAGE_MAX
        else message[: CONDITION_MESSAGE_MAX - 1] + "\u2026",
        "observedGeneration": generation,
        "lastTransitionTime": since,
    }


def progress_condition(
    counts: Mapping[str, int], *, writing: int, unrenderable: int = 0, unrunnable: int = 0
) -> tuple[str, str, str]:
    """(status, reason, message) of Ready for a valid, owned, synced Deployment
    (``unrenderable``: targets its templated score cannot be rendered for; ``unrunnable``:
    targets whose device-info lists no runtime of the score's type; both counted
    ``pending``: they have no entry)."""
    targeted = counts["targeted"]
    summary = (
        f"{counts['running']}/{targeted} running, {counts['pending']} pending, "
        f"{counts['failed']} failed, {counts['unreachable']} unreachable"
    )
    if writing:
        return "False", "Writing", f"writing desired state for {writing} devices; {summary}"
    if counts["running"] == targeted:
        return "True", "AllRunning", summary
    if counts["failed"]:
        return "False", "DevicesFailing", summary
    if unrenderable:
        return (
            "False",
            "DevicesUnrenderable",
            f"the score cannot be rendered for {unrenderable} devices (status.unrenderable); "
            f"{summary}",
        )
    if unrunnable:
        return (
            "False",
            "DevicesUnrunnable",
            f"{unrunnable} devices cannot run the score's type (status.unrunnable); {summary}",
        )
    return "False", "Progressing", summary


def deployment_status(
    *,
    generation: int,
    aggregate: Aggregate,
    error: str | None,
    conflict_with: str | None,
    name: str,
    active: bool,
    deleting: bool,
    entries: int,
    writing: int,
    previous: Mapping[str, Any] | None,
    rollout: Mapping[str, Any] | None = None,
    previous_progressing: Mapping[str, Any] | None = None,
    unrenderable: list[dict[str, str]] | None = None,
    unrenderable_count: int = 0,
    unrunnable: list[dict[str, str]] | None = None,
    unrunnable_count: int = 0,
) -> dict[str, Any]:
    """The ``.status`` of a Deployment: ``previous`` is the Ready condition last patched
    (``previous_progressing`` the Progressing one); ``rollout`` its ``.status.rollout``
    (:meth:`fleet.actors.operator.rollout.Rollout.status`), with its Progressing
    condition; ``unrenderable`` the targets (at most 10 of ``unrenderable_count``) its
    templated score cannot be rendered for (:mod:`.rendering`); ``unrunnable`` likewise
    the targets that do not run the score's type (:mod:`.runnable`)."""
    counts = aggregate.counts()
    if error is not None:
        cond = ("False", "InvalidSpec", error)
    elif conflict_with is not None:
        counts = dict.fromkeys(counts, 0)
        cond = (
            "False",
            "NameConflict",
            f"deployment name {name!r} is already used by Deployment {conflict_with} (created "
            "earlier); desired-state keys carry only the name, so this one writes nothing. "
            "Rename it or delete the other.",
        )
    elif not active:
        cond = ("Unknown", "Syncing", "waiting for the operator's initial sync")
    elif deleting:
        cond = ("False", "Deleting", f"deleting {entries} desired-state entries")
    else:
        cond = progress_condition(
            counts, writing=writing, unrenderable=unrenderable_count, unrunnable=unrunnable_count
        )
    status, reason, text = cond
    conditions = [
        ready_condition(
            status=status, reason=reason, message=text, generation=generation, previous=previous
        )
    ]
    out: dict[str, Any] = {
        "observedGeneration": generation,
        "aggregate": counts,
        "failingDevices": aggregate.failing() if conflict_with is None else [],
        "unrenderable": list(unrenderable or ()) if conflict_with is None and error is None else [],
        "unrunnable": list(unrunnable or ()) if conflict_with is None and error is None else [],
        "conditions": conditions,
    }
    if rollout is not None and error is None and conflict_with is None:
        out["rollout"] = dict(rollout)
        phase = str(rollout.get("phase", ""))
        conditions.append(
            ready_condition(
                type="Progressing",
                status="False" if phase in ("Halted", "RolledBack") else "True",
                reason=phase or "Unknown",
                message=str(rollout.get("reason") or phase),
                generation=generation,
                previous=previous_progressing,
            )
        )
    return out
