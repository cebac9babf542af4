"""The devices table's filter: a label selector, a name substring, a state, a page.

Why it exists: the page sends what a person typed; it is parsed here, bounded and total
(any text gives a :class:`DeviceQuery` or a :class:`QueryError` naming what was wrong),
before it touches the index. The selector is written as ``kubectl -l`` writes it:
``site=lab,tier!=gold,model in (pi4,pi5),gpu,!legacy`` (``=``/``==``, ``!=``, ``in``,
``notin``, a bare key: it exists, ``!key``: it does not), with Kubernetes' semantics
(:mod:`fleet.actors.operator.selectors`, the operator's own matcher).

Pure: no I/O. What it must never do: accept a selector past the operator's bounds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Literal, cast

import msgspec

from fleet.actors.operator.selectors import LabelSelector, parse_selector, shown
from fleet.errors import SpecError

State = Literal["", "online", "unreachable", "failing"]
STATES: Final = ("", "online", "unreachable", "failing")
MAX_SELECTOR: Final = 2048
MAX_NAME: Final = 253
MAX_PAGE_SIZE: Final = 500
DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE: Final = 1_000_000

_SET_TERM: Final = re.compile(r"^\s*(\S+?)\s+(in|notin)\s*\(([^()]*)\)\s*$")


class QueryError(ValueError):
    """A filter that does not parse: the message says which part and why."""


class DeviceQuery(msgspec.Struct, frozen=True, kw_only=True):
    selector: LabelSelector | None = None
    selector_text: str = ""
    name: str = ""
    state: State = ""
    page: int = 0
    size: int = DEFAULT_PAGE_SIZE

    @property
    def equalities(self) -> list[tuple[str, frozenset[str]]]:
        """The requirements an index of (key, value) can answer: ``In`` (and ``=``)."""
        if self.selector is None:
            return []
        return [(r.key, r.values) for r in self.selector.requirements if r.operator == "In"]


def _split_terms(text: str) -> list[str]:
    """Commas separate terms, except inside ``in (...)``."""
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
            if depth > 1:
                raise QueryError(f"label selector {shown(text)}: nested parentheses")
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise QueryError(f"label selector {shown(text)}: a ')' without its '('")
        elif ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    if depth:
        raise QueryError(f"label selector {shown(text)}: a '(' without its ')'")
    terms.append(text[start:])
    return terms


def _term(term: str, labels: dict[str, str], expressions: list[dict[str, Any]]) -> None:
    text = term.strip()
    if not text:
        raise QueryError("label selector: an empty term (two commas, or one at an end)")
    match = _SET_TERM.match(text)
    if match is not None:
        key, op, values = match.groups()
        listed = [v.strip() for v in values.split(",")]
        if any(not v for v in listed):
            raise QueryError(f"label selector term {shown(text)}: an empty value in the list")
        expressions.append({"key": key, "operator": "In" if op == "in" else "NotIn",
                            "values": listed})  # fmt: skip
        return
    for sep in ("!=", "==", "="):
        key, found, value = text.partition(sep)
        if found:
            key, value = key.strip(), value.strip()
            if sep == "!=":
                expressions.append({"key": key, "operator": "NotIn", "values": [value]})
            elif key in labels and labels[key] != value:
                labels[key] = value  # k=a,k=b: nothing matches; kept as two requirements
                expressions.append({"key": key, "operator": "In", "values": [value]})
            else:
                labels[key] = value
            return
    if text.startswith("!"):
        expressions.append({"key": text[1:].strip(), "operator": "DoesNotExist"})
    elif " " in text:
        raise QueryError(
            f"label selector term {shown(text)}: not KEY=VALUE, KEY!=VALUE, "
            "KEY in (A,B), KEY notin (A,B), KEY or !KEY"
        )
    else:
        expressions.append({"key": text, "operator": "Exists"})


def parse_selector_text(text: str) -> LabelSelector | None:
    """``kubectl -l`` syntax as a selector; empty: None (every device)."""
    if len(text) > MAX_SELECTOR:
        raise QueryError(f"label selector is {len(text)} characters, at most {MAX_SELECTOR}")
    if not text.strip():
        return None
    labels: dict[str, str] = {}
    expressions: list[dict[str, Any]] = []
    for term in _split_terms(text):
        _term(term, labels, expressions)
    try:
        return parse_selector({"matchLabels": labels, "matchExpressions": expressions},
                              where="label selector")  # fmt: skip
    except SpecError as exc:
        raise QueryError(str(exc)) from None


def _number(params: Mapping[str, str], key: str, default: int, *, low: int, high: int) -> int:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    if len(raw) > 12 or not raw.isascii() or not raw.isdigit():
        raise QueryError(f"{key} must be a whole number, got {shown(raw)}")
    value = int(raw)
    if not low <= value <= high:
        raise QueryError(f"{key} must be {low}..{high}, got {value}")
    return value


def parse_query(params: Mapping[str, str]) -> DeviceQuery:
    """The page's query parameters (``selector``, ``name``, ``state``, ``page``, ``size``)."""
    selector_text = params.get("selector", "")
    name = params.get("name", "").strip()
    if len(name) > MAX_NAME:
        raise QueryError(f"name is {len(name)} characters, at most {MAX_NAME}")
    state = params.get("state", "")
    if state not in STATES:
        raise QueryError(
            f"state must be one of online, unreachable, failing (or empty), got {shown(state)}"
        )
    return DeviceQuery(
        selector=parse_selector_text(selector_text),
        selector_text=selector_text.strip(),
        name=name,
        state=cast(State, state),
        page=_number(params, "page", 0, low=0, high=MAX_PAGE),
        size=_number(params, "size", DEFAULT_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE),
    )
