"""What each Deployment's aggregate must be, computed from what the devices reported.

Why it exists: the load swarm's verdict must not trust the operator's arithmetic, so
this module recomputes every aggregate from the buckets alone, by the rule of the
operator issue, with its own label-selector matcher (Kubernetes semantics):

* *targeted*: devices whose device-info labels match ``spec.selector``;
* *unreachable*: targeted devices whose last heartbeat (``at``) is older than the liveness
  timeout, or that never beat. They count only there;
* *running* / *failed*: the device's latest report at ``state.<device>.<deployment>`` says
  Running / Failed **and** its ``desired_revision`` is the revision of the desired entry
  currently written at ``<device>.<deployment>``;
* *pending*: every other targeted device, among them those whose device-info lists no
  runtime of the Deployment's score type (they must have no desired entry at all, and
  are listed in ``status.unrunnable``: issue 17).

A device whose heartbeat age is within ``margin`` of the timeout is *undecided* (the
operator's sweep may have seen it on either side): a check with undecided devices is
repeated, never passed or failed on a coin toss.

Pure: no I/O. It must never import the operator's code (it is the second opinion).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

FIELDS = ("targeted", "running", "pending", "failed", "unreachable")


class SelectorError(ValueError):
    """A label selector this checker cannot evaluate (names the bad part)."""


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics: matchLabels AND every matchExpression."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            ok = key in labels and labels[key] in values
        elif op == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif op == "Exists":
            ok = key in labels
        elif op == "DoesNotExist":
            ok = key not in labels
        else:
            raise SelectorError(
                f"matchExpressions operator {op!r} (key {key!r}) is not one of "
                "In, NotIn, Exists, DoesNotExist"
            )
        if not ok:
            return False
    return True


@dataclass(frozen=True, kw_only=True)
class Report:
    phase: str
    desired_revision: int


@dataclass(frozen=True, kw_only=True)
class FleetView:
    """The buckets, decoded: what the devices reported and what the operator wrote."""

    labels: Mapping[str, Mapping[str, str]]  # device -> labels (device-info)
    beats: Mapping[str, float]  # device -> last heartbeat ``at`` (epoch seconds)
    desired: Mapping[tuple[str, str], int]  # (device, deployment) -> KV revision
    reports: Mapping[tuple[str, str], Report]  # (device, deployment) -> latest report
    # device -> the score types its device-info lists (absent: podman only)
    runtimes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(kw_only=True)
class Expected:
    """One Deployment's expected aggregate, and the devices behind each count."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))
    targeted: set[str] = field(default_factory=set)
    unrunnable: set[str] = field(default_factory=set)  # targeted, without the score's runtime
    undecided: set[str] = field(default_factory=set)
    examples: dict[str, list[str]] = field(default_factory=dict)  # class -> a few devices

    def add(self, device: str, cls: str) -> None:
        self.counts[cls] += 1
        seen = self.examples.setdefault(cls, [])
        if len(seen) < 5:
            seen.append(device)


def classify(
    *, view: FleetView, device: str, deployment: str, now: float, liveness_timeout: float
) -> str:
    at = view.beats.get(device)
    if at is None or now - at > liveness_timeout:
        return "unreachable"
    revision = view.desired.get((device, deployment))
    report = view.reports.get((device, deployment))
    if revision is None or report is None or report.desired_revision != revision:
        return "pending"
    if report.phase == "Running":
        return "running"
    if report.phase == "Failed":
        return "failed"
    return "pending"


def expected_aggregate(
    *,
    view: FleetView,
    deployment: str,
    selector: Mapping[str, Any],
    now: float,
    liveness_timeout: float,
    margin: float,
    score_type: str = "podman",
) -> Expected:
    out = Expected()
    for device, labels in view.labels.items():
        if not selector_matches(selector, labels):
            continue
        out.targeted.add(device)
        if score_type not in view.runtimes.get(device, ("podman",)):
            out.unrunnable.add(device)
        out.counts["targeted"] += 1
        at = view.beats.get(device)
        if at is not None and abs((now - at) - liveness_timeout) < margin:
            out.undecided.add(device)
        out.add(
            device,
            classify(
                view=view,
                device=device,
                deployment=deployment,
                now=now,
                liveness_timeout=liveness_timeout,
            ),
        )
    return out


def differences(*, name: str, expected: Expected, aggregate: Mapping[str, Any] | None) -> list[str]:
    """Human-readable differences between the expected and the reported aggregate."""
    if aggregate is None:
        return [f"{name}: .status.aggregate is missing (expected {expected.counts})"]
    lines = []
    for key in FIELDS:
        got = aggregate.get(key)
        want = expected.counts[key]
        if got != want:
            who = ", ".join(expected.examples.get(key, [])) if key != "targeted" else ""
            hint = f" (e.g. {who})" if who else ""
            lines.append(f"{name}: aggregate.{key} is {got}, devices say {want}{hint}")
    return lines


def desired_differences(*, name: str, expected: Expected, written: Iterable[str]) -> list[str]:
    """Desired entries must exist exactly for the targeted devices that run the score's
    type; none for one that does not."""
    written_set = set(written)
    runnable = expected.targeted - expected.unrunnable
    missing = sorted(runnable - written_set)
    extra = sorted(written_set - expected.targeted)
    unrunnable = sorted(written_set & expected.unrunnable)
    lines = []
    if unrunnable:
        lines.append(
            f"{name}: {len(unrunnable)} desired entries for devices that cannot run its type "
            f"(e.g. {', '.join(unrunnable[:5])})"
        )
    if missing:
        lines.append(
            f"{name}: {len(missing)} targeted devices have no desired entry "
            f"(e.g. {', '.join(missing[:5])})"
        )
    if extra:
        lines.append(
            f"{name}: {len(extra)} desired entries for devices it does not select "
            f"(e.g. {', '.join(extra[:5])})"
        )
    return lines


def unrunnable_differences(
    *, name: str, expected: Expected, listed: Iterable[Mapping[str, Any]], bound: int = 10
) -> list[str]:
    """``status.unrunnable`` lists the first ``bound`` devices (by id) that cannot run it."""
    want = sorted(expected.unrunnable)[:bound]
    got = [str(u.get("device")) for u in listed]
    if got == want:
        return []
    return [f"{name}: status.unrunnable lists {got[:5]}..., devices say {want[:5]}... "
            f"({len(got)} listed, {len(expected.unrunnable)} cannot run it)"]  # fmt: skip
