"""Which devices have been silent for longer than the retention, and which keys they left.

Why it exists: a device id the operator has heard of costs memory for good (its labels,
its last heartbeat, its actor), and so does every made-up id a hostile writer puts in the
heartbeat bucket: 100,000 of them raised the operator from 71 MB to 210 MB, again after
every restart since the keys stayed. :class:`Retention` tracks, per device, when it was
last heard from (a heartbeat, an info update or a report: the latest ``at`` /
``updated_at``, never later than the operator's clock when it arrived) and the KV
revision of each key it wrote; :meth:`Retention.expired` hands out the devices silent for
longer than ``retention`` with those keys, so the fleet index can forget them and delete
the keys (compare-and-swap on those revisions: a device that came back in the meantime
keeps its keys).

Safety: no device is forgotten while the whole fleet is quiet (nobody heard from within
``quiet`` seconds: the operator is more likely cut off from the fleet than the fleet gone),
nor within ``grace`` seconds after it started or after such a quiet spell (every live
device has beaten again by then).

What it must never do: keep more than one heap entry per tracked device, or do I/O.
Plain and synchronous: the fleet index calls it.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from typing import Final

import msgspec

from fleet.contracts import (
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeviceId,
    device_heartbeat_key,
    device_info_key,
    device_state_key,
)

WEEK: Final = 7 * 24 * 3600.0

KeyAt = tuple[str, str, int]  # (bucket, key, revision)


class Forgotten(msgspec.Struct, frozen=True, kw_only=True):
    """A device silent since ``last_seen`` (epoch seconds), and the keys it left.

    ``keys``: heartbeat first (an agent that came back rewrites it within seconds, so its
    compare-and-swap fails first), then info, then its reports.
    """

    device: DeviceId
    last_seen: float
    keys: tuple[KeyAt, ...]


class _Seen:
    __slots__ = ("beat", "info", "last", "reports", "ticket")

    def __init__(self, last: float, ticket: int) -> None:
        self.last = last
        self.ticket = ticket  # which heap entry is this record's (others are stale)
        self.beat = 0  # revision of heartbeat.<device>; 0: none
        self.info = 0  # revision of info.<device>; 0: none
        self.reports: dict[DeploymentName, int] | None = None


class Retention:
    def __init__(self, *, retention: float, quiet: float, grace: float) -> None:
        self.retention = retention
        self._quiet = quiet
        self._grace = grace
        self._seen: dict[DeviceId, _Seen] = {}
        self._heap: list[tuple[float, int, DeviceId]] = []
        self._tickets = itertools.count(1)
        self._newest = 0.0
        self._awake_since: float | None = None

    @property
    def enabled(self) -> bool:
        return self.retention > 0

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, device: object) -> bool:
        return device in self._seen

    def seen(self, device: DeviceId, at: float, *, now: float) -> None:
        """``device`` was heard from ``at`` (its clock; a time ahead of ``now`` counts as now)."""
        if not self.enabled:
            return
        at = min(at, now)
        self._newest = max(self._newest, at)
        record = self._seen.get(device)
        if record is None:
            ticket = next(self._tickets)
            self._seen[device] = _Seen(at, ticket)
            heapq.heappush(self._heap, (at, ticket, device))
        elif at > record.last:
            record.last = at  # its heap entry is looked at again when it comes due

    def _record(self, device: DeviceId) -> _Seen | None:
        return self._seen.get(device) if self.enabled else None

    def beat_key(self, device: DeviceId, revision: int) -> None:
        """The revision of ``heartbeat.<device>`` (0: deleted)."""
        record = self._record(device)
        if record is not None:
            record.beat = revision

    def info_key(self, device: DeviceId, revision: int) -> None:
        """The revision of ``info.<device>`` (0: deleted)."""
        record = self._record(device)
        if record is not None:
            record.info = revision

    def report_key(self, device: DeviceId, deployment: DeploymentName, revision: int) -> None:
        """The revision of ``state.<device>.<deployment>`` (0: deleted)."""
        record = self._record(device)
        if record is None:
            return
        if revision:
            if record.reports is None:
                record.reports = {}
            record.reports[deployment] = revision
        elif record.reports is not None:
            record.reports.pop(deployment, None)

    def expired(self, *, now: float, limit: int = 10_000) -> list[Forgotten]:
        """At most ``limit`` devices silent for longer than the retention; they are no
        longer tracked (a later sign of life tracks them anew)."""
        if not self.enabled:
            return []
        if now - self._newest > self._quiet:
            self._awake_since = None  # nobody beats: do not judge anybody
            return []
        if self._awake_since is None:
            self._awake_since = now
        if now - self._awake_since < self._grace:
            return []
        cutoff = now - self.retention
        out: list[Forgotten] = []
        heap = self._heap
        while heap and heap[0][0] < cutoff and len(out) < limit:
            _at, ticket, device = heapq.heappop(heap)
            record = self._seen.get(device)
            if record is None or record.ticket != ticket:
                continue  # a stale entry of a record dropped and made again
            if record.last >= cutoff:
                heapq.heappush(heap, (record.last, ticket, device))  # heard from since
                continue
            del self._seen[device]
            out.append(
                Forgotten(device=device, last_seen=record.last, keys=tuple(_keys(device, record)))
            )
        return out


def _keys(device: DeviceId, record: _Seen) -> Iterator[KeyAt]:
    if record.beat:
        yield (BUCKET_DEVICE_HEARTBEAT, device_heartbeat_key(device), record.beat)
    if record.info:
        yield (BUCKET_DEVICE_INFO, device_info_key(device), record.info)
    for deployment, revision in sorted((record.reports or {}).items()):
        yield (BUCKET_DEVICE_STATE, device_state_key(device, deployment), revision)
