"""Hypothesis strategies for hostile bus values: what an attacker or a broken writer sends.

Each strategy draws bytes (or parsed JSON values) of one family the issue names: random
bytes, deep nesting, huge numbers, NUL and control characters, invalid UTF-8, duplicate
keys, wrong types, very long strings, and valid values with one field replaced. The
decoders and every intake path must turn each into a value or a ``ContractError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from tests.contracts import samples

# JSON scalars an attacker picks: edges of every type.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.integers(min_value=-(2**70), max_value=-(2**63) + 2),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=31), max_size=10),
    st.sampled_from(["", "\x00", "a" * 5000, "Running", "podman", "2025-03-01T12:00:00Z"]),
)

JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def nested(depth: int, *, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * depth + closer * depth


def deep_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


VALID: dict[str, Callable[[], dict[str, Any]]] = {
    "desired-state": samples.score_json,
    "device-state": samples.state_json,
    "device-info": samples.info_json,
    "device-heartbeat": samples.heartbeat_json,
}


@st.composite
def mutated(draw: st.DrawFn, base: Callable[[], dict[str, Any]]) -> bytes:
    """A valid value with one field (possibly nested) replaced by any JSON value."""
    payload = base()
    node: Any = payload
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, dict | list) and child and draw(st.booleans()):
            node = child
            continue
        node[key] = draw(JSON_VALUES)
        break
    return _dumps(payload)


@st.composite
def duplicate_keys(draw: st.DrawFn, base: Callable[[], dict[str, Any]]) -> bytes:
    """A valid value with one of its top-level keys repeated with another value."""
    payload = base()
    key = draw(st.sampled_from(sorted(payload)))
    extra = _dumps(draw(JSON_VALUES))
    body = _dumps(payload)
    return body[:-1] + b", " + _dumps(key) + b": " + extra + b"}"


@st.composite
def invalid_utf8(draw: st.DrawFn, base: Callable[[], dict[str, Any]]) -> bytes:
    """A valid value with bytes that are not UTF-8 inside one of its strings."""
    body = _dumps(base())
    bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]))
    at = body.find(b'"', 2)
    return body[: at + 1] + bad + body[at + 1 :]


def hostile_values(bucket: str) -> st.SearchStrategy[bytes]:
    """Every family of hostile bytes, shaped for ``bucket`` where a family needs a shape."""
    base = VALID[bucket]
    return st.one_of(
        st.binary(max_size=300),
        st.integers(min_value=17, max_value=5000).map(nested),
        st.integers(min_value=17, max_value=5000).map(deep_object),
        st.just(nested(100_000)),
        JSON_VALUES.map(_dumps),
        mutated(base),
        duplicate_keys(base),
        invalid_utf8(base),
        st.just(_dumps({**base(), "padding": "x" * 300_000})),
        st.just(b"\x00" * 64),
        st.just(_dumps(base()).replace(b"{", b"{" * 2, 1)),
    )


KEY_TEXT = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "",
            ".",
            "..",
            "a.b.c.d",
            "info.",
            "state.dev",
            "heartbeat.a.b",
            "dev.*",
            "dev.>",
            "info.-x",
            "state.dev.UPPER",
            "x" * 1000,
            "info." + "a" * 300,
        ]
    ),
)
