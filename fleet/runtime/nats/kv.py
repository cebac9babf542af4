"""The KV entry as fleet's runtime hands it to actors: immutable, client-free.

It exists so that actors and their tests never see a client's message or entry type
(nats-py's ``Entry`` is mutable and tied to the client), and so that every reader
(reads, watches, the desired feed, direct gets) turns what the server sent into one
type the same way.

What it must never do: import a client, or accept a header it cannot read (a revision
that is not a number is a :class:`~fleet.runtime.nats.transport.MalformedReply`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

from fleet.runtime.nats.subjects import KV_DELETE, KV_OPERATION, KV_PURGE, SEQUENCE
from fleet.runtime.nats.transport import MalformedReply

Operation = Literal["PUT", "DEL", "PURGE"]


class KvEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One KV entry: a value, or the marker of its deletion (``value`` is then empty)."""

    bucket: str
    key: str
    value: bytes
    revision: int
    operation: Operation = "PUT"

    @property
    def deleted(self) -> bool:
        return self.operation != "PUT"


def operation_of(headers: Mapping[str, str] | None) -> Operation:
    """The KV operation a stream message's headers carry (a plain put has none)."""
    if not headers:
        return "PUT"
    op = headers.get(KV_OPERATION)
    if op == KV_DELETE:
        return "DEL"
    if op == KV_PURGE:
        return "PURGE"
    return "PUT"


def revision_of(headers: Mapping[str, str] | None, *, what: str) -> int:
    """The stream sequence (``Nats-Sequence``) a direct get's reply carries."""
    value = (headers or {}).get(SEQUENCE, "")
    if not value.isdecimal():
        raise MalformedReply(f"{what}: reply without a readable {SEQUENCE} ({value[:40]!r})")
    return int(value)
