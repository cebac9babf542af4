"""The keys of forgotten devices: deleted if unchanged since, failures tried again.

Why it exists: when the retention (:mod:`.retention`) forgets a silent device, its
``heartbeat.<device>``, ``info.<device>`` and ``state.<device>.*`` keys go too, each only
if still at the revision the operator saw (a compare-and-swap: a device that wrote again
keeps its keys). :class:`KeyDeletions` hands the groups to the
:class:`~.ports.KeyDeleterPort` and, when a group failed (NATS unreachable), hands it
over again after ``retry`` seconds.

Plain and synchronous: outcomes come back as ``KeysDeleted`` through a
:class:`~.ports.RepliesPort`. What it must never do: retry a group whose key changed
(that device is back), or lose a failed group.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fleet.contracts import DeviceId

from . import messages as m
from .ports import KeyDeleterPort, RepliesPort
from .retention import KeyAt

logger = logging.getLogger(__name__)

Group = tuple[DeviceId, tuple[KeyAt, ...]]


class KeysDeleted(m.Msg, frozen=True, kw_only=True):
    """What became of the keys of forgotten devices: "deleted", "changed", "failed: ..."."""

    groups: tuple[Group, ...]
    results: tuple[str, ...]


class KeyDeletions:
    def __init__(
        self, *, deleter: KeyDeleterPort | None, replies: RepliesPort, retry: float = 30.0
    ) -> None:
        self._deleter = deleter
        self._replies = replies
        self._retry = retry
        self._failed: list[Group] = []
        self._retry_at = 0.0

    @property
    def pending_retries(self) -> int:
        return len(self._failed)

    def delete(self, groups: Sequence[Group], *, now: float) -> None:
        """Delete ``groups`` now, with the failed ones whose retry is due."""
        todo = list(groups)
        if self._failed and now >= self._retry_at:
            todo += self._failed
            self._failed = []
        if not todo or self._deleter is None:
            return
        self._replies.when_done(
            self._deleter.delete_unchanged([keys for _, keys in todo]),
            on_result=lambda results: KeysDeleted(groups=tuple(todo), results=tuple(results)),
            on_error=lambda exc: KeysDeleted(
                groups=tuple(todo), results=tuple(f"failed: {exc!r}" for _ in todo)
            ),
        )

    def done(self, msg: KeysDeleted, *, now: float) -> None:
        results = msg.results
        failed = [g for g, r in zip(msg.groups, results, strict=True) if r.startswith("fail")]
        changed = sum(1 for r in results if r == "changed")
        if changed:
            logger.info("%d forgotten devices wrote again before their keys went: kept", changed)
        if failed:
            first = next(r for r in results if r.startswith("fail"))
            logger.warning(
                "deleting the keys of %d forgotten devices failed (%s); retrying in %.0f s",
                len(failed), first, self._retry,
            )  # fmt: skip
            self._failed.extend(failed)
            self._retry_at = now + self._retry
