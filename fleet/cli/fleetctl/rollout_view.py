"""A Deployment's rollout as ``fleetctl rollout`` shows it: ``.status.rollout`` read
bounded and total, its lines and progress bars, and the history's rows.

Why it exists: the operator writes ``.status.rollout``, but what the API returns is
hostile input like anything else read from outside: a string where an object belongs, a
number too large to mean anything. :func:`deployment_rollout` turns a Deployment into a
:class:`Seen` or raises :class:`RolloutStatusError` naming the field, never anything
else. The rest turns those values into text.

Pure: no I/O. It must never write, nor decide anything the operator decides (when a batch
is done, whether to halt): it shows what the operator wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

import msgspec

from fleet.contracts import ANNOTATION_ROLLOUT_PAUSED
from fleet.runtime.kube.revisions import RevisionRecord

PHASES: Final = ("Progressing", "Paused", "WaitingForApproval", "Halted", "RolledBack", "Complete")
ENDED: Final = ("Complete", "Halted", "RolledBack")
FAILED: Final = ("Halted", "RolledBack")
MAX_NUMBER: Final = 2**53 - 1  # JSON's safe integers: anything larger is not a count
MAX_BATCHES: Final = 1000  # the operator allows 20 (+ the rest); more is not a rollout
MAX_REASON: Final = 1024
BAR_WIDTH: Final = 30
COUNTS: Final = ("devices", "updated", "running", "failed", "unreachable", "skipped")


class RolloutStatusError(Exception):
    """``.status.rollout`` (or the generation fields) cannot be read: the message says where."""


class Batch(NamedTuple):
    batch: int
    devices: int
    updated: int
    running: int
    failed: int
    unreachable: int
    skipped: int
    field: str | None


class Rollout(NamedTuple):
    revision: int
    phase: str
    current_batch: int
    batch_count: int
    stable_revision: int | None
    reason: str
    batches: tuple[Batch, ...]

    @property
    def ended(self) -> bool:
        return self.phase in ENDED


class Seen(NamedTuple):
    """What ``fleetctl rollout`` needs of one Deployment."""

    namespace: str
    name: str
    rollout: Rollout | None  # None: the operator has not written one yet
    generation: int
    observed: int
    paused: bool  # the pause annotation is set

    @property
    def current(self) -> bool:
        """The operator has seen the latest spec (its status is about it)."""
        return self.observed >= self.generation

    @property
    def done(self) -> bool:
        """A watch stops here: the latest spec's rollout has ended."""
        return self.current and self.rollout is not None and self.rollout.ended


def _number(value: object, where: str, *, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_NUMBER:
        raise RolloutStatusError(
            f"{where}: expected an integer {low}..{MAX_NUMBER}, got {_shown(value)}"
        )
    return value


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:80]}..."


def _text(value: object, where: str, *, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise RolloutStatusError(f"{where}: expected a string, got {_shown(value)}")
    return value[:MAX_REASON]


def parse_rollout(value: object, where: str = ".status.rollout") -> Rollout:
    """``.status.rollout`` as a :class:`Rollout`; :class:`RolloutStatusError` if unusable."""
    if not isinstance(value, Mapping):
        raise RolloutStatusError(f"{where}: expected an object, got {_shown(value)}")
    phase = value.get("phase")
    if phase not in PHASES:
        raise RolloutStatusError(
            f"{where}.phase: expected one of {', '.join(PHASES)}, got {_shown(phase)}"
        )
    raw = value.get("batches")
    raw = [] if raw is None else raw
    if not isinstance(raw, list) or len(raw) > MAX_BATCHES:
        raise RolloutStatusError(
            f"{where}.batches: expected a list of at most {MAX_BATCHES}, got {_shown(raw)}"
        )
    batches = tuple(_batch(b, f"{where}.batches[{i}]", i + 1) for i, b in enumerate(raw))
    stable = value.get("stableRevision")
    return Rollout(
        revision=_number(value.get("revision"), f"{where}.revision", low=1),
        phase=str(phase),
        current_batch=_number(value.get("currentBatch", 0), f"{where}.currentBatch"),
        batch_count=_number(value.get("batchCount", len(batches)), f"{where}.batchCount"),
        stable_revision=None if stable is None else _number(stable, f"{where}.stableRevision"),
        reason=_text(value.get("reason"), f"{where}.reason"),
        batches=batches,
    )


def _batch(value: object, where: str, index: int) -> Batch:
    if not isinstance(value, Mapping):
        raise RolloutStatusError(f"{where}: expected an object, got {_shown(value)}")
    counts = {k: _number(value.get(k, 0), f"{where}.{k}") for k in COUNTS}
    field = value.get("field")
    return Batch(
        batch=_number(value.get("batch", index), f"{where}.batch"),
        field=None if field is None else _text(field, f"{where}.field"),
        **counts,
    )


def deployment_rollout(obj: Mapping[str, Any]) -> Seen:
    """A Deployment read from the API as a :class:`Seen` (:class:`RolloutStatusError`)."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    status = obj.get("status")
    status = status if isinstance(status, Mapping) else {}
    annotations = meta.get("annotations")
    annotations = annotations if isinstance(annotations, Mapping) else {}
    raw = status.get("rollout")
    return Seen(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        rollout=None if raw is None else parse_rollout(raw),
        generation=_number(meta.get("generation", 0), ".metadata.generation"),
        observed=_number(status.get("observedGeneration", 0), ".status.observedGeneration"),
        paused=annotations.get(ANNOTATION_ROLLOUT_PAUSED) == "true",
    )


# -- status ---------------------------------------------------------------------------


def headline(seen: Seen) -> str:
    where = f"deployment {seen.namespace}/{seen.name}"
    r = seen.rollout
    if r is None:
        return f"{where}: no rollout yet, waiting for the operator"
    text = f"{where}: revision {r.revision} {r.phase}, batch {r.current_batch}/{r.batch_count}"
    if r.stable_revision is not None:
        text += f" (stable: revision {r.stable_revision})"
    return text


def notes(seen: Seen) -> list[str]:
    """The reason, and what the operator has not caught up with yet."""
    lines = []
    if seen.rollout is not None and seen.rollout.reason:
        lines.append(f"  {seen.rollout.reason}")
    if not seen.current:
        lines.append(
            f"  waiting for the operator to see generation {seen.generation} "
            f"(it has seen {seen.observed})"
        )
    if seen.paused and (seen.rollout is None or seen.rollout.phase != "Paused"):
        lines.append("  paused (fleetctl rollout resume): the operator has not acted on it yet")
    return lines


def batch_line(b: Batch) -> str:
    text = (
        f"  batch {b.batch}: {b.devices} devices, {b.updated} updated, {b.running} running, "
        f"{b.failed} failed, {b.unreachable} unreachable"
    )
    if b.skipped:
        text += f", {b.skipped} skipped"
    return text + (f" ({b.field})" if b.field else "")


def bar_line(b: Batch, *, width: int = BAR_WIDTH) -> str:
    """``  batch 2 [#######.......]  3/10 running, 1 failed``."""
    filled = width * min(b.running, b.devices) // b.devices if b.devices else 0
    bar = "#" * filled + "." * (width - filled)
    text = f"  batch {b.batch} [{bar}] {b.running}/{b.devices} running"
    extra = [f"{n} {k}" for k, n in (("failed", b.failed), ("unreachable", b.unreachable)) if n]
    return text + (f", {', '.join(extra)}" if extra else "")


def status_lines(seen: Seen, *, bars: bool = False) -> list[str]:
    batches = seen.rollout.batches if seen.rollout is not None else ()
    return [
        headline(seen),
        *notes(seen),
        *((bar_line(b) if bars else batch_line(b)) for b in batches),
    ]


def status_json(seen: Seen) -> dict[str, Any]:
    r = seen.rollout
    return {
        "namespace": seen.namespace,
        "name": seen.name,
        "generation": seen.generation,
        "observedGeneration": seen.observed,
        "paused": seen.paused,
        "rollout": None if r is None else {
            "revision": r.revision, "phase": r.phase, "currentBatch": r.current_batch,
            "batchCount": r.batch_count, "stableRevision": r.stable_revision,
            "reason": r.reason, "batches": [b._asdict() for b in r.batches],
        },
    }  # fmt: skip


# -- history --------------------------------------------------------------------------


def outcome(record: RevisionRecord, *, current: int | None, phase: str | None) -> str:
    """Its recorded outcome; else the current phase for the current revision,
    ``Superseded`` for an older one, ``Pending`` for one the status has not reached."""
    if record.outcome is not None:
        return record.outcome
    if current is None or record.number > current:
        return "Pending"
    if record.number == current:
        return phase or "Pending"
    return "Superseded"


def score_summary(desired: bytes, *, limit: int = 80) -> str:
    """``name=image, ...`` of a revision's score (its containers)."""
    try:
        score = msgspec.json.decode(desired)
    except msgspec.DecodeError:
        return "?"
    containers = score.get("containers") if isinstance(score, dict) else None
    if not isinstance(containers, list):
        return str(score.get("type", "?")) if isinstance(score, dict) else "?"
    text = ", ".join(f"{c.get('name')}={c.get('image')}" for c in containers if isinstance(c, dict))
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def history_rows(
    records: Sequence[RevisionRecord], *, current: int | None, phase: str | None
) -> list[dict[str, Any]]:
    if current is None and records:
        current = records[-1].number  # no status yet: the newest is the one to roll out
    return [
        {"revision": r.number, "outcome": outcome(r, current=current, phase=phase),
         "created": r.created, "score": score_summary(r.desired), "reason": r.reason}
        for r in records
    ]  # fmt: skip
