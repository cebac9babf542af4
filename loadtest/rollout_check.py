"""The rollout scenario's verdict: what every desired-state write and every device say.

Why it exists: ``loadtest/run --scenario rollout`` must prove, not take the operator's
word, that a bad revision halted and rolled back without reaching past the batches it
was allowed to (or that a good one completed), and that the devices that were offline
caught up once back. :func:`judge` compares what was observed with what the devices
imply (:mod:`loadtest.rollout_plan`):

* the outcome: ``.status.rollout`` (revision 2, its phase and batch) and the outcome
  journaled on the ``DeploymentRevision``, against the predicted one;
* the batches: the status's batch sizes against the recomputed membership;
* from the stream history (:mod:`loadtest.tap`; complete: as many writes as the stream's
  sequence moved by): every device ever given revision 2 is
  in a batch reached (so no offline device outside them saw it either); when rolled
  back, no revision 2 write after the first rollback write; when complete, no device
  given revision 2 was given revision 1 again;
* at the end: every target's entry holds the value it should (revision 1's after a
  rollback, 2's after completion), every device reports it Running at that entry's
  revision, and every device that was offline did so after it came back, with fresh
  heartbeats.

What it must never do: I/O, or pass a run it could not decide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from loadtest.rollout_plan import IMAGE_V1, IMAGE_V2, Prediction, image_in
from loadtest.tap import Write


class DeviceReport(NamedTuple):
    phase: str
    desired_revision: int
    updated_at: float  # seconds since the epoch


@dataclass(frozen=True, kw_only=True)
class Observed:
    """What the run saw, once the rollout ended and the offline devices were back."""

    members: list[list[str]]  # the recomputed batches
    prediction: Prediction
    offline: frozenset[str]
    writes: Sequence[Write]  # the Deployment's desired-state writes, in order
    stored: int  # how many writes the stream stored meanwhile (its sequence moved by)
    rollout: Mapping[str, Any]  # the final .status.rollout
    outcome: str | None  # status.outcome of the DeploymentRevision of revision 2
    desired: Mapping[str, tuple[int, bytes]]  # device -> (entry revision, value)
    reports: Mapping[str, DeviceReport]
    beats: Mapping[str, float]  # device -> its last heartbeat's ``at`` (epoch seconds)
    back_at: float  # when the offline devices were told to come back (epoch seconds)


@dataclass(kw_only=True)
class RolloutVerdict:
    ok: bool = True
    lines: list[str] = field(default_factory=list)  # what is wrong
    facts: list[str] = field(default_factory=list)  # what was proven

    def render(self) -> str:
        return "\n".join(
            ["PASS" if self.ok else "FAIL"]
            + [f"  {line}" for line in self.facts]
            + [f"  - {line}" for line in self.lines]
        )


def judge(seen: Observed) -> RolloutVerdict:
    verdict = RolloutVerdict()
    expected = seen.prediction
    if expected.outcome == "Stuck":
        verdict.lines.append(
            f"this draw cannot halt nor complete ({expected.render()}): the scenario shows "
            "nothing; run it with another --seed"
        )
    reached = _outcome(seen, verdict)
    _batches(seen, verdict)
    _complete(seen, verdict)
    _history(seen, verdict, reached)
    _final(seen, verdict)
    verdict.ok = not verdict.lines
    return verdict


def _outcome(seen: Observed, verdict: RolloutVerdict) -> int:
    """Check the outcome; return how many batches were reached (from the prediction)."""
    expected, status = seen.prediction, seen.rollout
    phase, revision, batch = status.get("phase"), status.get("revision"), status.get("currentBatch")
    if revision != 2:
        verdict.lines.append(f".status.rollout.revision is {revision!r}, not 2")
    if expected.outcome in ("RolledBack", "Complete"):
        if phase != expected.outcome:
            verdict.lines.append(
                f".status.rollout.phase is {phase!r}, the devices imply {expected.render()}"
            )
        if seen.outcome != expected.outcome:
            verdict.lines.append(
                f"DeploymentRevision of revision 2 journaled {seen.outcome!r}, "
                f"not {expected.outcome!r}"
            )
        if batch != expected.batch:
            verdict.lines.append(
                f".status.rollout.currentBatch is {batch!r}, the devices imply {expected.batch}"
            )
    verdict.facts.append(
        f"outcome: {phase} at batch {batch}/{status.get('batchCount')} (journaled "
        f"{seen.outcome}); predicted {expected.render()}"
    )
    return expected.batch


def _batches(seen: Observed, verdict: RolloutVerdict) -> None:
    shown = [b.get("devices") for b in seen.rollout.get("batches") or []]
    sizes = [len(m) for m in seen.members]
    if shown != sizes:
        verdict.lines.append(f".status.rollout.batches devices are {shown}, recomputed {sizes}")
    verdict.facts.append(f"batches recomputed from rank(): {sizes} devices, as the status says")


def _complete(seen: Observed, verdict: RolloutVerdict) -> None:
    if len(seen.writes) != seen.stored:
        verdict.lines.append(
            f"the tap saw {len(seen.writes)} desired-state writes, the stream stored "
            f"{seen.stored}: the history is incomplete"
        )


def _history(seen: Observed, verdict: RolloutVerdict, reached: int) -> None:
    allowed = {d for batch in seen.members[:reached] for d in batch}
    given_v2: set[str] = set()
    first_back: int | None = None  # index of the first write giving revision 1 back
    taken_back: set[str] = set()
    late_v2 = 0
    for i, write in enumerate(seen.writes):
        image = image_in(write.value)
        if image == IMAGE_V2:
            given_v2.add(write.device)
            if first_back is not None:
                late_v2 += 1
        elif write.device in given_v2:
            taken_back.add(write.device)
            if first_back is None:
                first_back = i
    outside = sorted(given_v2 - allowed)
    if outside:
        verdict.lines.append(
            f"{len(outside)} devices outside the {reached} batch(es) reached were given "
            f"revision 2: {outside[:10]}"
        )
    if not outside:
        offline_outside = len(seen.offline - allowed)
        verdict.facts.append(
            f"stream history: {len(seen.writes)} writes, all of them; {len(given_v2)} devices "
            f"given revision 2, all within the {reached} batch(es) reached ({len(allowed)} "
            "devices)"
            + (
                f", none of the {offline_outside} offline devices outside them"
                if offline_outside
                else ""
            )
        )
    passed = {d for batch in seen.members[: reached - 1] for d in batch}
    if missed := passed - given_v2:
        verdict.lines.append(
            f"{len(missed)} devices of the batches passed were never given revision 2"
        )
    if seen.prediction.outcome == "RolledBack":
        if late_v2:
            verdict.lines.append(f"{late_v2} revision-2 writes came after the rollback began")
        if given_v2 - taken_back:
            verdict.lines.append(
                f"{len(given_v2 - taken_back)} devices given revision 2 were never given "
                "revision 1 back"
            )
    elif taken_back:
        verdict.lines.append(
            f"{len(taken_back)} devices were given revision 2 and then something else, "
            f"without a rollback: {sorted(taken_back)[:10]}"
        )


def _final(seen: Observed, verdict: RolloutVerdict) -> None:
    want = IMAGE_V1 if seen.prediction.outcome == "RolledBack" else IMAGE_V2
    targets = [d for batch in seen.members for d in batch]
    wrong_entry, not_running, not_back = [], [], []
    for device in targets:
        entry = seen.desired.get(device)
        if entry is None or image_in(entry[1]) != want:
            wrong_entry.append(device)
            continue
        report = seen.reports.get(device)
        if report is None or report.phase != "Running" or report.desired_revision != entry[0]:
            not_running.append(device)
        elif device in seen.offline and (
            report.updated_at < seen.back_at or seen.beats.get(device, 0.0) < seen.back_at
        ):
            not_back.append(device)
    for what, devices in (
        (f"do not hold {want}", wrong_entry),
        ("do not report Running at their entry's revision", not_running),
        ("were offline and did not report or beat since they came back", not_back),
    ):
        if devices:
            verdict.lines.append(f"{len(devices)} devices {what}: {sorted(devices)[:10]}")
    if not (wrong_entry or not_running or not_back):
        verdict.facts.append(
            f"final: all {len(targets)} devices run {want} at their entry's revision, the "
            f"{len(seen.offline)} offline ones since they came back"
        )
