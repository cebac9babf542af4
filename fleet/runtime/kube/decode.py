"""Kubernetes objects from the API's JSON bytes: linear, total, one object at a time.

Why it exists: the ``kubernetes`` client parses every response with ``json.loads``, which
raises ``RecursionError`` on a value nested about 1,000 deep. A real API server stores a
Deployment whose ``spec.score`` (``x-kubernetes-preserve-unknown-fields``) nests 10,000
deep, so one such object made every list of Deployments fail: no Deployment was seen at
all. msgspec recurses too (even to skip a field). So the operator reads raw bytes and
decodes them here:

* fast path: one msgspec decode into small typed structs (metadata fields, ``spec``
  left as raw bytes), what every well-formed response takes;
* when that fails (too deep, wrong types, not JSON), a linear scan of the bytes
  (:mod:`.jsonscan`, no recursion: a regex over strings and brackets) cuts the list
  into its items and an
  item into its members, and each item is decoded alone: a bad one is reported and
  skipped, a too-deep or malformed ``spec`` travels as raw bytes to be refused by the
  operator with a reason (``InvalidSpec``), the others are unaffected.

What it must never do: recurse on input, raise anything but :class:`KubeDecodeError`, or
let one object's fault touch another object.
"""

from __future__ import annotations

from typing import Final

import msgspec

from fleet.contracts.limits import json_depth
from fleet.runtime.kube.jsonscan import KubeDecodeError, scan_elements, scan_members, shown

__all__ = [
    "TOO_DEEP",
    "Event",
    "KubeDecodeError",
    "KubeObject",
    "ObjectList",
    "decode_event",
    "decode_list",
    "decode_loose",
    "decode_object",
]


_STR: Final = msgspec.json.Decoder(str)


class KubeObject(msgspec.Struct, frozen=True, kw_only=True):
    """A custom object as actors see it: metadata fields, ``spec`` as JSON bytes."""

    namespace: str | None
    name: str
    uid: str
    generation: int
    resource_version: str
    creation_timestamp: str
    deletion_timestamp: str | None
    finalizers: tuple[str, ...]
    spec: bytes
    annotations: tuple[tuple[str, str], ...] = ()  # fleet's own (ANNOTATION_PREFIX), bounded
    status: bytes = b"null"  # as read (at most STATUS_MAX bytes, else null)

    def annotation(self, key: str) -> str | None:
        for k, v in self.annotations:
            if k == key:
                return v
        return None

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.namespace, self.name)


class _Meta(msgspec.Struct, rename="camel"):
    name: str = ""
    namespace: str | None = None
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    creation_timestamp: str = ""
    deletion_timestamp: str | None = None
    finalizers: list[str] | None = None
    annotations: dict[str, str] | None = None


_META_FIELDS: Final = frozenset(
    ("name", "namespace", "uid", "generation", "resourceVersion", "creationTimestamp",
     "deletionTimestamp", "finalizers", "annotations")
)  # fmt: skip
_NULL: Final = msgspec.Raw(b"null")


class _Object(msgspec.Struct):
    metadata: _Meta | None = None
    spec: msgspec.Raw = _NULL
    status: msgspec.Raw = _NULL


class _ListMeta(msgspec.Struct, rename="camel"):
    resource_version: str = ""


class _List(msgspec.Struct):
    items: list[_Object] | None = None
    metadata: _ListMeta | None = None


class _Status(msgspec.Struct):
    code: int | None = None
    message: str | None = None
    metadata: _ListMeta | None = None


class ObjectList(msgspec.Struct, frozen=True, kw_only=True):
    """A list's usable objects, what was wrong with the others, and its resourceVersion."""

    objects: tuple[KubeObject, ...]
    problems: tuple[str, ...]
    resource_version: str


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One watch event: ``obj`` for ADDED/MODIFIED/DELETED, ``problem`` if it was unusable."""

    type: str
    obj: KubeObject | None = None
    code: int | None = None  # ERROR events
    message: str | None = None  # ERROR events
    resource_version: str = ""  # BOOKMARK events
    problem: str | None = None


ANNOTATION_PREFIX: Final = "fleet.nationtech.io/"
ANNOTATION_MAX: Final = 256
STATUS_MAX: Final = 256 * 1024


def _annotations(raw: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    return tuple(
        (k, v)
        for k, v in raw.items()
        if k.startswith(ANNOTATION_PREFIX) and len(v) <= ANNOTATION_MAX
    )[:16]


def _object(meta: _Meta | None, spec: bytes, status: bytes = b"null") -> KubeObject:
    if meta is None or not meta.name:
        raise KubeDecodeError("metadata.name is missing")
    return KubeObject(
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        generation=meta.generation,
        resource_version=meta.resource_version,
        creation_timestamp=meta.creation_timestamp,
        deletion_timestamp=meta.deletion_timestamp,
        finalizers=tuple(meta.finalizers or ()),
        spec=spec,
        annotations=_annotations(meta.annotations),
        status=status if len(status) <= STATUS_MAX else b"null",
    )


def _meta_slow(data: bytes) -> _Meta:
    """Metadata whose other fields (managedFields...) are too deep: keep the ones we read."""
    try:
        kept = {k: v for k, v in scan_members(data).items() if k in _META_FIELDS}
        small = b"{" + b",".join(msgspec.json.encode(k) + b":" + v for k, v in kept.items()) + b"}"
        return msgspec.json.decode(small, type=_Meta)
    except (msgspec.MsgspecError, RecursionError) as exc:
        raise KubeDecodeError(f"metadata: {exc}") from exc


def decode_object(data: bytes) -> KubeObject:
    """One object (a ``get``, or an item of a list); :class:`KubeDecodeError` if unusable."""
    try:
        fast = msgspec.json.decode(data, type=_Object)
        return _object(fast.metadata, bytes(fast.spec), bytes(fast.status))
    except (msgspec.MsgspecError, RecursionError):
        pass  # the slow path below says what is wrong, and salvages what it can
    members = scan_members(data)
    meta = members.get("metadata")
    if meta is None:
        raise KubeDecodeError("metadata is missing")
    return _object(
        _meta_slow(meta),
        members.get("spec", b"null") or b"null",
        members.get("status", b"null") or b"null",
    )


def _named(data: bytes, index: int) -> str:
    """A name for an unusable item: ``namespace/name`` if they can be found, else its index."""
    try:
        meta = scan_members(scan_members(data).get("metadata", b"{}"))
        name = _STR.decode(meta.get("name", b'""'))
        namespace = _STR.decode(meta.get("namespace", b'""'))
    except (KubeDecodeError, msgspec.MsgspecError):
        return f"item {index}"
    return f"{namespace}/{name}" if namespace and name else name or f"item {index}"


def decode_list(data: bytes, *, what: str) -> ObjectList:
    """A list response; a bad item is left out and named in ``problems``.

    :class:`KubeDecodeError` only when the response itself is not a list.
    """
    try:
        fast = msgspec.json.decode(data, type=_List)
        objects = []
        problems = []
        for i, item in enumerate(fast.items or ()):
            try:
                objects.append(_object(item.metadata, bytes(item.spec), bytes(item.status)))
            except KubeDecodeError as exc:
                problems.append(f"{what}: item {i}: {exc}")
        return ObjectList(
            objects=tuple(objects),
            problems=tuple(problems),
            resource_version=fast.metadata.resource_version if fast.metadata else "",
        )
    except (msgspec.MsgspecError, RecursionError):
        pass  # one item is bad: take them one by one
    try:
        members = scan_members(data)
        version = msgspec.json.decode(members.get("metadata", b"{}"), type=_ListMeta)
        items = scan_elements(members.get("items", b"[]"))
    except (KubeDecodeError, msgspec.MsgspecError, RecursionError) as exc:
        raise KubeDecodeError(f"{what}: not a list ({exc}): {shown(data)}") from exc
    objects = []
    problems = []
    for i, element in enumerate(items):
        try:
            objects.append(decode_object(element))
        except KubeDecodeError as exc:
            problems.append(f"{what}: {_named(element, i)}: {exc}")
    return ObjectList(
        objects=tuple(objects), problems=tuple(problems), resource_version=version.resource_version
    )


def decode_event(data: bytes) -> Event:
    """One watch line; an unusable object comes back as an event with ``problem`` set."""
    try:
        members = scan_members(data)
        kind = _STR.decode(members.get("type", b'""'))
    except (KubeDecodeError, msgspec.MsgspecError) as exc:
        return Event(type="", problem=f"not a watch event ({exc}): {shown(data)}")
    raw = members.get("object", b"{}")
    if kind in ("ERROR", "BOOKMARK"):
        try:
            status = msgspec.json.decode(raw, type=_Status)
        except (msgspec.MsgspecError, RecursionError) as exc:
            return Event(type=kind, problem=f"{kind} event: {exc}")
        return Event(
            type=kind,
            code=status.code,
            message=status.message,
            resource_version=status.metadata.resource_version if status.metadata else "",
        )
    try:
        return Event(type=kind, obj=decode_object(raw))
    except KubeDecodeError as exc:
        return Event(type=kind, problem=f"{kind} {_named(raw, 0)}: {exc}")


#: What stands in, in :func:`decode_loose`, for a value nested deeper than its bound.
TOO_DEEP: Final = "<nested too deep to show>"
_LOOSE_DEPTH: Final = 32
_ANY: Final = msgspec.json.Decoder()


def decode_loose(data: bytes, *, depth: int = _LOOSE_DEPTH) -> object:
    """Any JSON document as plain Python values, for readers that only show it (fleetctl).

    A value nested deeper than ``depth`` is replaced by :data:`TOO_DEEP` instead of
    raising; the rest of the document is kept. Never recurses more than ``depth`` levels.
    :class:`KubeDecodeError` if ``data`` is not JSON at all.
    """
    if json_depth(data) <= depth:
        try:
            return _ANY.decode(data)
        except msgspec.MsgspecError as exc:
            raise KubeDecodeError(f"not JSON: {exc}: {shown(data)}") from exc
    return _loose(data.strip(), depth)


def _loose(data: bytes, depth: int) -> object:
    if json_depth(data) <= 1 or data[:1] not in (b"{", b"["):
        try:
            return _ANY.decode(data)
        except msgspec.MsgspecError as exc:
            raise KubeDecodeError(f"not JSON: {exc}: {shown(data)}") from exc
    if depth <= 0:
        return TOO_DEEP
    if data[:1] == b"[":
        return [_loose(element, depth - 1) for element in scan_elements(data)]
    return {key: _loose(value, depth - 1) for key, value in scan_members(data).items()}
