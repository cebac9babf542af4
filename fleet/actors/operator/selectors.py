"""Kubernetes label selectors (``matchLabels`` + ``matchExpressions``), parsed and matched.

Why it exists: a Deployment targets the devices whose device-info labels match its
``spec.selector``; the semantics are Kubernetes' own (all requirements ANDed; ``In`` and
``NotIn`` need values, ``Exists``/``DoesNotExist`` none; an empty selector matches every
device; ``NotIn``/``DoesNotExist`` match devices without the key).

Bounded: at most :data:`MAX_REQUIREMENTS` requirements (every device is matched against
every one of them on each label change: 10,000 terms times 100,000 devices stalled the
fleet index) and :data:`MAX_VALUES` values per expression; an error message shows a bad
value cut to :data:`SHOWN` characters.
Pure: no I/O, no actors.

What it must never do: match differently from Kubernetes, or accept a selector past its bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, cast

import msgspec

from fleet.contracts import is_label_key, is_label_value
from fleet.errors import SpecError

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
OPERATORS: Final = ("In", "NotIn", "Exists", "DoesNotExist")
MAX_REQUIREMENTS: Final = 64
"""matchLabels entries plus matchExpressions, together (a device has at most 64 labels)."""
MAX_VALUES: Final = 1024
"""Values of one In/NotIn expression."""
SHOWN: Final = 100


def shown(value: object) -> str:
    """``repr(value)``, cut to :data:`SHOWN` characters (a bad value may be a megabyte)."""
    try:
        text = repr(value)
    except RecursionError:
        return f"<a {type(value).__name__} nested too deep to show>"
    return text if len(text) <= SHOWN else f"{text[:SHOWN]}... ({len(text)} characters)"


class Requirement(msgspec.Struct, frozen=True):
    key: str
    operator: Operator
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return labels.get(self.key) not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


class LabelSelector(msgspec.Struct, frozen=True):
    """All requirements must hold; no requirement at all matches everything."""

    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(req.matches(labels) for req in self.requirements)


def _check_key(key: object, where: str) -> str:
    if not isinstance(key, str) or not is_label_key(key):
        raise SpecError(f"{where}: invalid label key {shown(key)}")
    return key


def _check_value(value: object, where: str) -> str:
    if not isinstance(value, str) or not is_label_value(value):
        raise SpecError(f"{where}: invalid label value {shown(value)}")
    return value


def parse_selector(raw: Any, where: str = "spec.selector") -> LabelSelector:
    """Parse a selector (``spec.selector``, or the one at ``where``); :class:`SpecError`
    names the bad field and value."""
    if raw is None:
        raise SpecError(f"{where} is missing (use {{}} to select every device)")
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be an object, got {shown(raw)}")
    unknown = set(raw) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise SpecError(f"{where} has unknown fields {shown(sorted(unknown))}")
    requirements: list[Requirement] = []
    match_labels = raw.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        raise SpecError(f"{where}.matchLabels must be an object, got {shown(match_labels)}")
    expressions = raw.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise SpecError(f"{where}.matchExpressions must be a list, got {shown(expressions)}")
    terms = len(match_labels) + len(expressions)
    if terms > MAX_REQUIREMENTS:
        raise SpecError(
            f"{where} has {terms} requirements (matchLabels and matchExpressions), "
            f"at most {MAX_REQUIREMENTS} allowed"
        )
    for key, value in match_labels.items():
        at = f"{where}.matchLabels[{shown(key)}]"
        requirements.append(
            Requirement(_check_key(key, at), "In", frozenset({_check_value(value, at)}))
        )
    for i, expr in enumerate(expressions):
        requirements.append(_parse_expression(expr, f"{where}.matchExpressions[{i}]"))
    return LabelSelector(tuple(requirements))


def _parse_expression(expr: Any, where: str) -> Requirement:
    if not isinstance(expr, dict):
        raise SpecError(f"{where} must be an object, got {shown(expr)}")
    key = _check_key(expr.get("key"), f"{where}.key")
    operator = expr.get("operator")
    if not isinstance(operator, str) or operator not in OPERATORS:
        raise SpecError(
            f"{where}.operator must be one of {', '.join(OPERATORS)}, got {shown(operator)}"
        )
    values = expr.get("values") or []
    if not isinstance(values, list):
        raise SpecError(f"{where}.values must be a list, got {shown(values)}")
    if len(values) > MAX_VALUES:
        raise SpecError(f"{where}.values has {len(values)} values, at most {MAX_VALUES} allowed")
    checked = frozenset(_check_value(v, f"{where}.values") for v in values)
    if operator in ("In", "NotIn") and not checked:
        raise SpecError(f"{where}: operator {operator} needs at least one value")
    if operator in ("Exists", "DoesNotExist") and checked:
        raise SpecError(
            f"{where}: operator {operator} takes no values, got {shown(sorted(checked))}"
        )
    return Requirement(key, cast(Operator, operator), checked)
