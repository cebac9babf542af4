"""A transport that asks the write fence before every write to the buckets.

Why it exists: with leader election (fleet/runtime/kube/lease.py), a replica that lost
its Lease must not write one more desired entry, whatever actor or path the write
comes from. Every KV write leaves through the transport as a message to
``$KV.<bucket>.<key>`` (a put, or a delete or purge marker) or as a ``$JS.API`` request
that changes a stream (create, update, delete, purge, message delete); this wrapper
asks :meth:`~fleet.runtime.fencing.WriteFence.check` before sending either, and lets
reads, watches and replies through. A connection that writes elsewhere (the operator's
system-account connection, whose ``$SYS.REQ.CLAIMS.UPDATE`` pushes the account JWT with
every revocation) names those subjects too (``also``).

What it must never do: let a write subject through unchecked, or block (the fence only
reads a clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from fleet.runtime.fencing import WriteFence
from fleet.runtime.nats.transport import ForwardingTransport, Message, Transport

_KV: Final = "$KV."
_STREAM_WRITES: Final = tuple(
    f"$JS.API.STREAM.{verb}." for verb in ("CREATE", "UPDATE", "DELETE", "PURGE", "MSG.DELETE")
)


def is_write(subject: str) -> bool:
    """True for a subject whose message changes what the buckets hold."""
    return subject.startswith(_KV) or subject.startswith(_STREAM_WRITES)


class FencedTransport(ForwardingTransport):
    """``inner``, with every write checked against ``fence`` first."""

    def __init__(
        self, inner: Transport, fence: WriteFence, *, also: frozenset[str] = frozenset()
    ) -> None:
        """``also``: further subjects that count as writes (exact names)."""
        super().__init__(inner)
        self.fence = fence
        self._also = also

    def _is_write(self, subject: str) -> bool:
        return is_write(subject) or subject in self._also

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        reply: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if self._is_write(subject):
            self.fence.check(f"write to {subject}")
        await self.inner.publish(subject, payload, reply=reply, headers=headers)

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float,
    ) -> Message:
        if self._is_write(subject):
            self.fence.check(f"write to {subject}")
        return await self.inner.request(subject, payload, headers=headers, timeout=timeout)
