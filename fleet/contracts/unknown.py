"""Which field of a parsed score its contract does not have.

Why it exists: readers ignore unknown fields (docs/contracts.md, "Values"), which is
right for reports and for anyone who only displays a value, but not for whoever must
*honour* a score: an agent that dropped a newer release's ``volumes`` or ``memory``, or an
operator that dropped them while re-encoding a Deployment's score, would run something
other than what was asked. Both ask this module, on the raw JSON tree, and refuse the
score naming the field. The structs stay lenient (no ``forbid_unknown_fields``), so
every other reader still reads newer values.

The walk follows the contract's types (``msgspec.inspect``), not a decoded value, so it
also works on a score whose strings are still per-device templates. Bounded by the
value itself (already checked for size and depth by its decoder). Pure: no I/O.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec.inspect as mi

from .scores import ReconcileScore


@functools.cache
def _score_type() -> mi.Type:
    return mi.type_info(ReconcileScore)


def _unwrap(kind: mi.Type) -> mi.Type:
    while isinstance(kind, mi.Metadata):
        kind = kind.type
    return kind


def _walk(raw: Any, kind: mi.Type, path: str) -> str | None:
    kind = _unwrap(kind)
    if isinstance(kind, mi.UnionType):
        return _walk_union(raw, kind, path)
    if isinstance(kind, mi.StructType) and isinstance(raw, dict):
        fields = {f.encode_name: f.type for f in kind.fields}
        for key in raw:
            if key not in fields and key != kind.tag_field:
                return f"{path}.{key}" if path else str(key)
        for key, field_type in fields.items():
            if key in raw:
                found = _walk(raw[key], field_type, f"{path}.{key}" if path else key)
                if found is not None:
                    return found
        return None
    items: list[tuple[str, Any, mi.Type]] = []
    if isinstance(kind, mi.ListType) and isinstance(raw, list):
        items = [(f"{path}[{index}]", item, kind.item_type) for index, item in enumerate(raw)]
    elif isinstance(kind, mi.DictType) and isinstance(raw, dict):  # secret_env's sources
        items = [(f"{path}.{key}", item, kind.value_type) for key, item in raw.items()]
    for where, item, item_type in items:
        found = _walk(item, item_type, where)
        if found is not None:
            return found
    return None


def _walk_union(raw: Any, kind: mi.UnionType, path: str) -> str | None:
    structs = [t for t in map(_unwrap, kind.types) if isinstance(t, mi.StructType)]
    if isinstance(raw, dict) and structs:
        tagged = [t for t in structs if t.tag_field and raw.get(t.tag_field) == t.tag]
        chosen = tagged[0] if tagged else structs[0] if len(structs) == 1 else None
        return _walk(raw, chosen, path) if chosen is not None else None
    lists = [t for t in map(_unwrap, kind.types) if isinstance(t, mi.ListType)]
    if lists and isinstance(raw, list):
        return _walk(raw, lists[0], path)
    dicts = [t for t in map(_unwrap, kind.types) if isinstance(t, mi.DictType)]
    return _walk(raw, dicts[0], path) if dicts and isinstance(raw, dict) else None


def unknown_score_field(raw: object) -> str | None:
    """The path (``containers[0].gpus``) of the first field of the parsed score ``raw``
    that its variant's contract does not have, or None (an unknown ``type`` is the
    decoder's to refuse)."""
    return _walk(raw, _score_type(), "")
