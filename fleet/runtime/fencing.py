"""The write fence: one question every write to shared state asks first, "may I still?".

Why it exists: with two operator replicas, only the one holding the leader Lease may
write (desired entries, statuses, Devices, Events). A leader that cannot renew its Lease
(the API is away, the process stalled) must stop writing *before* another replica may
take the Lease over, not when it next notices. The Lease elector
(:mod:`fleet.runtime.kube.lease`) is the fence; the writers of each outside service
(:class:`~fleet.runtime.kube.client.KubeClient`, the NATS transport's
:class:`~fleet.runtime.nats.fenced.FencedTransport`) call :meth:`WriteFence.check` before
every write, so the rule holds below every actor, whatever path a write takes.

What it must never do: block, or do I/O (it is asked on the event loop and on every
writer's thread).
"""

from __future__ import annotations

from typing import Final, Protocol


class WriteFence(Protocol):
    def check(self, what: str) -> None:
        """Return if this process may write now; raise :class:`~fleet.errors.Fenced`
        naming ``what`` otherwise."""
        ...


class _Open:
    """No fence: a single operator (no leader election) always may write."""

    def check(self, what: str) -> None:
        return None


OPEN: Final[WriteFence] = _Open()
