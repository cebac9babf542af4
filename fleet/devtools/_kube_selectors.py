"""Label and field selectors for the API emulator, parsed and matched as the API server does.

It exists because ``kubectl`` (``-l``, ``--field-selector``, ``describe``'s Events, ``delete
--wait``) and the operator's clients send selectors, and an emulator that ignores them
answers with objects a real cluster would leave out. A malformed selector is refused with
:class:`SelectorError` (the emulator answers 400 BadRequest naming it), never half-applied.

It must never do I/O or import kmock: pure functions over strings and dicts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

_NAME: Final = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_PREFIX: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_TOKEN: Final = re.compile(r"\s*(!=|==|=|!|\(|\)|,|<|>|[^\s!=(),<>]+)")
MAX_SELECTOR: Final = 4096  # a real server bounds the URL; a longer selector is refused


class SelectorError(ValueError):
    """A selector the API server would refuse; the message says which part and why."""


# -- label selectors -----------------------------------------------------------------------

Requirement = tuple[str, str, tuple[str, ...]]  # key, operator, values


def _key(key: str, selector: str) -> str:
    prefix, _, name = key.rpartition("/")
    ok = bool(_NAME.fullmatch(name)) and len(name) <= 63
    if prefix and (len(prefix) > 253 or not _PREFIX.fullmatch(prefix)):
        ok = False
    if not ok:
        raise SelectorError(
            f"unable to parse requirement: key: Invalid value: {key!r} in {selector!r}: a "
            "qualified name must consist of alphanumeric characters, '-', '_' or '.', and "
            "must start and end with an alphanumeric character (an optional DNS prefix and '/')"
        )
    return key


def _value(value: str, key: str) -> str:
    if value and (len(value) > 63 or not _NAME.fullmatch(value)):
        raise SelectorError(
            f"unable to parse requirement: values[0][{key}]: Invalid value: {value!r}: a valid "
            "label must be an empty string or consist of alphanumeric characters, '-', '_' or "
            "'.', and must start and end with an alphanumeric character"
        )
    return value


def _tokens(selector: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(selector):
        if selector[pos:].strip() == "":
            break
        match = _TOKEN.match(selector, pos)
        if match is None:  # pragma: no cover  (the pattern matches any non-blank rest)
            raise SelectorError(f"couldn't parse the selector string {selector!r}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


class _LabelParser:
    """One pass over a label selector's tokens (the API server's grammar, its messages)."""

    def __init__(self, selector: str) -> None:
        self.selector = selector
        self.tokens = _tokens(selector)
        self.i = 0

    def fail(self, found: str, expected: str) -> SelectorError:
        return SelectorError(
            f"couldn't parse the selector string {self.selector!r}: found {found!r}, "
            f"expected: {expected}"
        )

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str) -> str:
        token = self.peek()
        if token is None:
            raise self.fail("", expected)
        self.i += 1
        return token

    def requirement(self) -> Requirement:
        token = self.take("identifier")
        if token == "!":
            return (_key(self.take("identifier after '!'"), self.selector), "!", ())
        if token in ("=", "==", "!=", "!", "(", ")", ",", "<", ">"):
            raise self.fail(token, "!, identifier, or 'end of string'")
        key = _key(token, self.selector)
        op = self.peek()
        if op in (None, ","):
            return (key, "exists", ())
        self.i += 1
        if op in ("=", "==", "!=", "<", ">"):
            value = "" if self.peek() in (None, ",") else self.take("value")
            if op in "<>":
                if not re.fullmatch(r"-?\d+", value):
                    raise SelectorError(
                        "unable to parse requirement: for 'Gt', 'Lt' operators, the value "
                        f"must be an integer: {value!r} in {self.selector!r}"
                    )
                return (key, op, (value,))
            return (key, "!=" if op == "!=" else "=", (_value(value, key),))
        if op in ("in", "notin"):
            if (token := self.take("'('")) != "(":
                raise self.fail(token, f"'(' after {op!r}")
            values: list[str] = []
            while (token := self.take("',' or ')'")) != ")":
                if token != ",":
                    values.append(_value(token, key))
            return (key, op, tuple(values))
        raise self.fail(str(op), "in, notin, =, ==, !=, gt, lt")

    def parse(self) -> list[Requirement]:
        out: list[Requirement] = []
        while self.peek() is not None:
            out.append(self.requirement())
            if (token := self.peek()) is not None:
                if token != ",":
                    raise self.fail(token, "','")
                self.i += 1
        return out


def parse_labels(selector: str) -> list[Requirement]:
    """``a=b,c!=d,e in (f,g),!h,i`` -> requirements (all must hold); SelectorError if bad."""
    if len(selector) > MAX_SELECTOR:
        raise SelectorError(f"label selector is longer than {MAX_SELECTOR} characters")
    return _LabelParser(selector).parse()


def labels_match(requirements: list[Requirement], labels: Mapping[str, Any]) -> bool:
    for key, op, values in requirements:
        has = key in labels
        value = labels.get(key)
        if op == "exists":
            ok = has
        elif op == "!":
            ok = not has
        elif op in ("=", "in"):
            ok = has and value in values
        elif op in ("!=", "notin"):
            ok = not has or value not in values
        else:  # "<" or ">": numeric, as the API server compares them
            try:
                number = int(str(value))
            except ValueError:
                return False
            ok = has and (number < int(values[0]) if op == "<" else number > int(values[0]))
        if not ok:
            return False
    return True


# -- field selectors -----------------------------------------------------------------------

FieldTerm = tuple[str, bool, str]  # field, equal (False: !=), value
Getter = Callable[[Mapping[str, Any]], str]


def _path(*keys: str) -> Getter:
    def get(obj: Mapping[str, Any]) -> str:
        value: Any = obj
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        return "" if value is None else str(value)

    return get


_COMMON: Final[dict[str, Getter]] = {
    "metadata.name": _path("metadata", "name"),
    "metadata.namespace": _path("metadata", "namespace"),
}
_INVOLVED: Final = (
    "kind",
    "namespace",
    "name",
    "uid",
    "apiVersion",
    "resourceVersion",
    "fieldPath",
)
# What the API server lets each built-in kind be selected by (pkg/registry/core/*/strategy.go)
FIELDS: Final[dict[str, dict[str, Getter]]] = {
    "events": {
        **{f"involvedObject.{k}": _path("involvedObject", k) for k in _INVOLVED},
        "reason": _path("reason"),
        "reportingComponent": _path("reportingComponent"),
        "source": _path("source", "component"),
        "type": _path("type"),
    },
    "namespaces": {"status.phase": _path("status", "phase")},
}


def _split(selector: str, seps: str) -> list[str]:
    """Split on unescaped ``seps`` (``\\,`` ``\\=`` ``\\!`` escape them, as the API does)."""
    parts, current, escaped = [], [], False
    for char in selector:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
            current.append(char)
        elif char in seps:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_fields(selector: str, *, plural: str) -> list[FieldTerm]:
    """``metadata.name=x,involvedObject.uid!=y`` -> terms; SelectorError if bad or unknown."""
    if len(selector) > MAX_SELECTOR:
        raise SelectorError(f"field selector is longer than {MAX_SELECTOR} characters")
    supported = _COMMON | FIELDS.get(plural, {})
    terms: list[FieldTerm] = []
    for part in _split(selector, ","):
        if not part:
            continue
        match = re.match(r"((?:[^=!\\]|\\.)*)(!=|==|=)(.*)", part)
        if match is None:
            raise SelectorError(f"invalid selector: {selector!r}; can't understand {part!r}")
        field, op, value = _unescape(match.group(1)), match.group(2), match.group(3)
        if re.search(r"(?<!\\)[=!]", value):
            raise SelectorError(f"invalid selector: {selector!r}; can't understand {part!r}")
        if field not in supported:
            raise SelectorError(f"field label not supported: {field}")
        terms.append((field, op != "!=", _unescape(value)))
    return terms


def fields_match(terms: list[FieldTerm], obj: Mapping[str, Any], *, plural: str) -> bool:
    getters = _COMMON | FIELDS.get(plural, {})
    return all((getters[field](obj) == value) == equal for field, equal, value in terms)
