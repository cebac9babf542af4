"""A linear scan of JSON text: an object's members and an array's elements, as raw bytes.

Why it exists: every JSON parser at hand recurses (``json.loads``, msgspec, even to skip
a field), so a value nested 10,000 deep, which a real API server stores in a Deployment,
ends it with ``RecursionError``. This scan does not parse values: a regex over strings
and brackets finds where each top-level member or element starts and ends, so the
decoders in :mod:`.decode` can take one object at a time and leave a too-deep part as
raw bytes.

What it must never do: recurse, or raise anything but :class:`KubeDecodeError`.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

from fleet.errors import PermanentError


class KubeDecodeError(PermanentError):
    """The API's bytes are not a usable Kubernetes object (the message says why)."""


# One token: a JSON string (escapes included), a bracket, a colon or a comma. Scalars
# (numbers, true, false, null) lie between tokens.
_TOKEN: Final = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}:,]', re.DOTALL)
_STR: Final = msgspec.json.Decoder(str)
_SHOWN: Final = 160


def scan_members(data: bytes) -> dict[str, bytes]:
    """The top-level members of the JSON object ``data`` (values as raw bytes), linearly."""
    if not data.lstrip().startswith(b"{"):
        raise KubeDecodeError("not a JSON object")
    members: dict[str, bytes] = {}
    depth = 0
    key: str | None = None
    start = 0
    for match in _TOKEN.finditer(data):
        token = match.group()
        first = token[0]
        if first in b"{[":
            depth += 1
        elif first in b"}]":
            if depth == 1 and key is not None:
                members[key] = data[start : match.start()].strip()
                key = None
            depth -= 1
        elif depth != 1:
            continue
        elif first == ord('"') and key is None:
            try:
                key = _STR.decode(token)
            except msgspec.MsgspecError as exc:
                raise KubeDecodeError(f"bad member name {shown(token)}: {exc}") from exc
        elif first == ord(":"):
            start = match.end()
        elif first == ord(","):
            if key is not None:
                members[key] = data[start : match.start()].strip()
            key = None
    return members


def scan_elements(data: bytes) -> list[bytes]:
    """The elements of the JSON array ``data`` (raw bytes each), linearly."""
    if not data.lstrip().startswith(b"["):
        raise KubeDecodeError("not a JSON array")
    elements: list[bytes] = []
    depth = 0
    start = 0
    for match in _TOKEN.finditer(data):
        first = match.group()[0]
        if first in b"{[":
            depth += 1
            if depth == 1:
                start = match.end()
        elif first in b"}]":
            if depth == 1:
                element = data[start : match.start()].strip()
                if element:
                    elements.append(element)
            depth -= 1
        elif first == ord(",") and depth == 1:
            elements.append(data[start : match.start()].strip())
            start = match.end()
    return elements


def shown(data: bytes) -> str:
    text = data[:_SHOWN].decode("utf-8", errors="replace")
    return text + "..." if len(data) > _SHOWN else text
