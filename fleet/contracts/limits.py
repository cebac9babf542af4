"""The wire's bounds: how big, how deep and how many, for every value on the bus.

Why it exists: every byte on the bus is hostile until decoded. A value nested 1,000
levels deep made the JSON decoder raise ``RecursionError`` (not a ``ContractError``),
which killed the actor that read it; a score of 10,000 containers exhausted podman's
addresses; a 200 KB report slowed every reader. Each bound here is checked *before*
decoding (size, depth) or while validating (counts, lengths), by readers and writers
alike, and the buckets are created with :data:`MAX_VALUE_BYTES` as their server-side
maximum value size, so nats-server refuses an oversized put outright.

The numbers are generous for real use (the largest valid value the tests build is well
under a tenth of each) and small enough that one value can never cost a reader more
than a few milliseconds. docs/contracts.md ("Bounds") lists them for other languages.

This module must never do I/O or import anything of fleet's but :mod:`fleet.errors`.
"""

from __future__ import annotations

import re
from collections.abc import Sized
from typing import Final

from fleet.errors import ContractError

MAX_DEPTH: Final = 16
"""JSON nesting depth of any value (objects and arrays) but a desired-state value. The
deepest valid one, a report or an info, is 3 deep."""
MAX_DESIRED_DEPTH: Final = 48
"""JSON nesting depth of a desired-state value (a score): a ``kubernetes`` score carries
Kubernetes objects, which nest deep (a CronJob's pod anti-affinity values sit 17 levels
inside its score); a podman score is at most 6 deep."""

MAX_DESIRED_BYTES: Final = 64 * 1024
"""A desired-state value (a score)."""
MAX_STATE_BYTES: Final = 32 * 1024
"""A device-state value (one report): room for a message of MAX_MESSAGE_LENGTH characters
each escaped as \\u00XX (6 bytes), the worst case a writer can produce."""
MAX_INFO_BYTES: Final = 16 * 1024
"""A device-info value."""
MAX_HEARTBEAT_BYTES: Final = 1024
"""A device-heartbeat value."""
MAX_VALUE_BYTES: Final = MAX_DESIRED_BYTES
"""The largest value any bucket accepts (each bucket's ``max_value_size``)."""

MAX_CONTAINERS: Final = 32
"""Containers in one podman score."""
MAX_PORTS: Final = 64
"""Published ports of one container."""
MAX_ENV: Final = 256
"""Environment variables of one container."""
MAX_COMMAND_ARGS: Final = 256
"""Arguments of one container's command."""
MAX_IMAGE_LENGTH: Final = 512
"""An image reference, in characters."""
MAX_MESSAGE_LENGTH: Final = 4096
"""A report's ``message``, in characters (writers truncate, readers refuse longer)."""
MAX_LABELS: Final = 64
"""Labels of one device."""
MAX_TEXT_LENGTH: Final = 256
"""Any other free-text field (inventory strings, the agent version), in characters."""
MAX_INT: Final = 2**63 - 1
"""Any integer field (revisions, sequence numbers, sizes): a signed 64-bit range."""

BUCKET_VALUE_LIMITS: Final[dict[str, int]] = {
    "desired-state": MAX_DESIRED_BYTES,
    "device-info": MAX_INFO_BYTES,
    "device-state": MAX_STATE_BYTES,
    "device-heartbeat": MAX_HEARTBEAT_BYTES,
}
"""Each bucket's own value bound (what its decoder accepts)."""

# A JSON string literal (escapes included): brackets inside one are not nesting.
_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET: Final = re.compile(rb"[\[\]{}]")
_OPEN: Final = frozenset(b"[{")


def json_depth(data: bytes) -> int:
    """How deeply the JSON text ``data`` nests (0 for a scalar); linear, never recursive.

    Only used past :func:`check_json_bounds`'s fast path: a text with at most
    :data:`MAX_DEPTH` brackets cannot nest deeper than that.
    """
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', data)):
        if match.group()[0] in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def check_json_bounds(
    data: bytes, *, what: str, max_bytes: int, max_depth: int = MAX_DEPTH
) -> None:
    """Raise :class:`ContractError` if ``data`` is larger than ``max_bytes`` or nests
    deeper than ``max_depth``; cheap for the values real writers send."""
    if len(data) > max_bytes:
        raise ContractError(f"{what} is too large: {len(data)} bytes, at most {max_bytes} allowed")
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return  # fast path: too few brackets to nest too deep
    depth = json_depth(data)
    if depth > max_depth:
        raise ContractError(f"{what} nests {depth} levels deep, at most {max_depth} allowed")


def check_length(value: Sized | None, *, field: str, limit: int, what: str = "characters") -> None:
    """Raise :class:`ContractError` naming ``field`` if ``len(value)`` exceeds ``limit``."""
    if value is not None and len(value) > limit:
        raise ContractError(
            f"{field} is too long: {len(value)} {what}, at most {limit} allowed", field=field
        )


def truncate_message(message: str | None) -> str | None:
    """``message`` cut to :data:`MAX_MESSAGE_LENGTH` characters (a writer's side of the bound)."""
    if message is None or len(message) <= MAX_MESSAGE_LENGTH:
        return message
    return message[: MAX_MESSAGE_LENGTH - 1] + "\u2026"
