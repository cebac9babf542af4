"""The KV entry as fleet's runtime hands it to actors: immutable, client-free.

It exists so that actors and their tests never see nats-py's ``Entry`` (mutable, and
tied to the client), and so that :mod:`fleet.runtime.bus` and :mod:`fleet.runtime.watch`
share one definition without importing each other.
"""

from __future__ import annotations

from typing import Literal

import msgspec

KV_OPERATION = "KV-Operation"

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


def operation_of(headers: dict[str, str] | None) -> Operation:
    """The KV operation a stream message's headers carry (a plain put has none)."""
    op = (headers or {}).get(KV_OPERATION, "PUT")
    if op == "DEL":
        return "DEL"
    if op == "PURGE":
        return "PURGE"
    return "PUT"
