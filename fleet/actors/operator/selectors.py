"""Kubernetes label selectors (``matchLabels`` + ``matchExpressions``), parsed and matched.

Why it exists: a Deployment targets the devices whose device-info labels match its
``spec.selector``; the semantics are Kubernetes' own (all requirements ANDed; ``In`` and
``NotIn`` need values, ``Exists``/``DoesNotExist`` none; an empty selector matches every
device; ``NotIn``/``DoesNotExist`` match devices without the key).
Pure: no I/O, no actors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import msgspec

from fleet.contracts import is_label_key, is_label_value
from fleet.errors import SpecError

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
OPERATORS: Final = ("In", "NotIn", "Exists", "DoesNotExist")


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
        raise SpecError(f"{where}: invalid label key {key!r}")
    return key


def _check_value(value: object, where: str) -> str:
    if not isinstance(value, str) or not is_label_value(value):
        raise SpecError(f"{where}: invalid label value {value!r}")
    return value


def parse_selector(raw: Any) -> LabelSelector:
    """Parse ``spec.selector``; :class:`SpecError` names the bad field and value."""
    if raw is None:
        raise SpecError("spec.selector is missing (use {} to select every device)")
    if not isinstance(raw, dict):
        raise SpecError(f"spec.selector must be an object, got {raw!r}")
    unknown = set(raw) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise SpecError(f"spec.selector has unknown fields {sorted(unknown)}")
    requirements: list[Requirement] = []
    match_labels = raw.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        raise SpecError(f"spec.selector.matchLabels must be an object, got {match_labels!r}")
    for key, value in match_labels.items():
        where = f"spec.selector.matchLabels[{key!r}]"
        requirements.append(
            Requirement(_check_key(key, where), "In", frozenset({_check_value(value, where)}))
        )
    expressions = raw.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise SpecError(f"spec.selector.matchExpressions must be a list, got {expressions!r}")
    for i, expr in enumerate(expressions):
        requirements.append(_parse_expression(expr, f"spec.selector.matchExpressions[{i}]"))
    return LabelSelector(tuple(requirements))


def _parse_expression(expr: Any, where: str) -> Requirement:
    if not isinstance(expr, dict):
        raise SpecError(f"{where} must be an object, got {expr!r}")
    key = _check_key(expr.get("key"), f"{where}.key")
    operator = expr.get("operator")
    if operator not in OPERATORS:
        raise SpecError(f"{where}.operator must be one of {', '.join(OPERATORS)}, got {operator!r}")
    values = expr.get("values") or []
    if not isinstance(values, list):
        raise SpecError(f"{where}.values must be a list, got {values!r}")
    checked = frozenset(_check_value(v, f"{where}.values") for v in values)
    if operator in ("In", "NotIn") and not checked:
        raise SpecError(f"{where}: operator {operator} needs at least one value")
    if operator in ("Exists", "DoesNotExist") and checked:
        raise SpecError(f"{where}: operator {operator} takes no values, got {sorted(checked)}")
    return Requirement(key, operator, checked)
