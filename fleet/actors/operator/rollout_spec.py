"""A Deployment's ``spec.rollout`` and ``spec.revisionHistoryLimit``, validated.

Why it exists: a rollout policy that cannot be followed (batches adding up to 120%, a
threshold of 150%, a pause of "soon") must be refused with the field it is about, like
every other bad spec (``Ready=False``, reason ``InvalidSpec``), and nothing written for
it. :func:`parse_rollout` turns the raw JSON into a :class:`RolloutPolicy` or raises
:class:`SpecError` naming the field. The rules that follow the policy are in
:mod:`.rollout`; docs/rollouts.md has the user's view.

Pure and total: any value ends as a policy or a ``SpecError``.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

import msgspec

from fleet.errors import SpecError

from .selectors import LabelSelector, parse_selector, shown

MAX_BATCHES: Final = 20
MAX_PAUSE: Final = 7 * 24 * 3600.0
HISTORY_DEFAULT: Final = 10
HISTORY_MAX: Final = 100
_PERCENT = re.compile(r"^([0-9]{1,3})%$")
_DURATION = re.compile(r"^(?:([0-9]{1,4})h)?(?:([0-9]{1,5})m)?(?:([0-9]{1,7})s)?$")
_FIELDS: Final = frozenset(
    ("batches", "maxUnavailable", "successThreshold", "failureThreshold", "autoRollback",
     "pauseBetweenBatches", "approval", "unreachable")
)  # fmt: skip


class Size(msgspec.Struct, frozen=True):
    """A count of devices, or a percentage of some whole."""

    value: int
    percent: bool

    def of(self, whole: int) -> int:
        """The count this size is of ``whole`` (a percentage rounds up)."""
        if not self.percent:
            return self.value
        return math.ceil(self.value * whole / 100)

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)


class Batch(msgspec.Struct, frozen=True):
    """One batch: ``size`` of the targets (None: every target its selector matches), only
    those ``selector`` matches (None: any). ``field`` names it in messages."""

    size: Size | None
    selector: LabelSelector | None
    field: str


class RolloutPolicy(msgspec.Struct, frozen=True, kw_only=True):
    batches: tuple[Batch, ...]  # the last, implicit batch ("the rest") is not listed
    max_unavailable: Size = Size(100, percent=True)
    success_threshold: int = 100  # percent
    failure_threshold: Size | None = None
    auto_rollback: bool = False
    pause: float = 0.0  # seconds between batches
    manual: bool = False  # approval: manual
    unreachable_fails: bool = False  # unreachable: fail


def parse_history_limit(raw: Any) -> int:
    if raw is None:
        return HISTORY_DEFAULT
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= HISTORY_MAX:
        raise SpecError(
            f"spec.revisionHistoryLimit must be an integer from 1 to {HISTORY_MAX}, "
            f"got {shown(raw)}"
        )
    return raw


def parse_size(raw: Any, where: str, *, allow_zero: bool = False) -> Size:
    """A count (``5``) or a percentage (``"10%"``) at ``where``."""
    low = 0 if allow_zero else 1
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw < low or raw > 10_000_000:
            raise SpecError(f"{where} must be a count of at least {low}, got {shown(raw)}")
        return Size(raw, percent=False)
    if isinstance(raw, str) and (match := _PERCENT.match(raw)):
        value = int(match.group(1))
        if value < low or value > 100:
            raise SpecError(f"{where} must be a percentage from {low}% to 100%, got {raw!r}")
        return Size(value, percent=True)
    raise SpecError(f'{where} must be a count (5) or a percentage ("10%"), got {shown(raw)}')


def parse_percent(raw: Any, where: str) -> int:
    """A percentage, as ``90`` or ``"90%"``, from 0 to 100."""
    if isinstance(raw, str) and (match := _PERCENT.match(raw)):
        raw = int(match.group(1))
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 100:
        raise SpecError(f'{where} must be a percentage from 0 to 100 ("90%"), got {shown(raw)}')
    return raw


def parse_duration(raw: Any, where: str) -> float:
    """Seconds, as a number or a Go-style duration (``"30s"``, ``"5m"``, ``"1h30m"``)."""
    seconds: float
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        seconds = float(raw)
    elif isinstance(raw, str) and raw and (match := _DURATION.match(raw)):
        hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
        seconds = float(hours * 3600 + minutes * 60 + secs)
    else:
        raise SpecError(f'{where} must be a duration ("30s", "5m", "1h30m"), got {shown(raw)}')
    if not 0 <= seconds <= MAX_PAUSE:
        raise SpecError(f"{where} must be between 0s and 168h, got {shown(raw)}")
    return seconds


_APPROVALS: Final = ("automatic", "manual")
_UNREACHABLE: Final = ("skip", "fail")


def _choice(raw: Any, where: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (the first when absent)."""
    if raw is None:
        return choices[0]
    if not isinstance(raw, str) or raw not in choices:
        raise SpecError(f"{where} must be one of {', '.join(choices)}, got {shown(raw)}")
    return raw


def _parse_batch(raw: Any, where: str) -> Batch:
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be an object with size and/or selector, got {shown(raw)}")
    unknown = set(raw) - {"size", "selector"}
    if unknown:
        raise SpecError(f"{where} has unknown fields {shown(sorted(unknown))}")
    size = parse_size(raw["size"], f"{where}.size") if raw.get("size") is not None else None
    selector = (
        parse_selector(raw["selector"], f"{where}.selector")
        if raw.get("selector") is not None
        else None
    )
    if size is None and selector is None:
        raise SpecError(f"{where} needs a size, a selector, or both")
    return Batch(size=size, selector=selector, field=where)


def parse_rollout(raw: Any) -> RolloutPolicy | None:
    """``spec.rollout`` (absent or null: None, every target at once)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SpecError(f"spec.rollout must be an object, got {shown(raw)}")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise SpecError(f"spec.rollout has unknown fields {shown(sorted(unknown))}")
    batches_raw = raw.get("batches")
    if not isinstance(batches_raw, list) or not batches_raw:
        raise SpecError(f"spec.rollout.batches must be a non-empty list, got {shown(batches_raw)}")
    if len(batches_raw) > MAX_BATCHES:
        raise SpecError(
            f"spec.rollout.batches has {len(batches_raw)} batches, at most {MAX_BATCHES} allowed"
        )
    batches = tuple(
        _parse_batch(b, f"spec.rollout.batches[{i}]") for i, b in enumerate(batches_raw)
    )
    percent = sum(b.size.value for b in batches if b.size is not None and b.size.percent)
    if percent > 100:
        raise SpecError(
            f"spec.rollout.batches: the percentage sizes add up to {percent}%, over 100%"
        )
    failure = raw.get("failureThreshold")
    return RolloutPolicy(
        batches=batches,
        max_unavailable=(
            parse_size(raw["maxUnavailable"], "spec.rollout.maxUnavailable")
            if raw.get("maxUnavailable") is not None
            else Size(100, percent=True)
        ),
        success_threshold=(
            parse_percent(raw["successThreshold"], "spec.rollout.successThreshold")
            if raw.get("successThreshold") is not None
            else 100
        ),
        failure_threshold=(
            parse_size(failure, "spec.rollout.failureThreshold") if failure is not None else None
        ),
        auto_rollback=_flag(raw.get("autoRollback"), "spec.rollout.autoRollback"),
        pause=(
            parse_duration(raw["pauseBetweenBatches"], "spec.rollout.pauseBetweenBatches")
            if raw.get("pauseBetweenBatches") is not None
            else 0.0
        ),
        manual=_choice(raw.get("approval"), "spec.rollout.approval", _APPROVALS) == "manual",
        unreachable_fails=(
            _choice(raw.get("unreachable"), "spec.rollout.unreachable", _UNREACHABLE) == "fail"
        ),
    )


def _flag(raw: Any, where: str) -> bool:
    if raw is None:
        return False
    if not isinstance(raw, bool):
        raise SpecError(f"{where} must be true or false, got {shown(raw)}")
    return raw
