"""Puts, deletes and re-reads of one deployment name's desired-state entries.

Why it exists: a rollout writes 10,000-100,000 entries for one Deployment. They go to
the runtime's batch writer (:class:`~.ports.KvWriterPort`) in chunks of
:data:`WRITE_CHUNK` keys, each key built by :func:`fleet.contracts.desired_state_key`,
and every outcome comes back as one message (``WritesDone``, ``Verified``) through a
:class:`~.ports.RepliesPort`, with each key's own result: a chunk may half fail.

Plain and synchronous: it submits and returns. What it must never do: wait on a future,
or spell a key itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from fleet.contracts import BUCKET_DESIRED_STATE, DeploymentName, DeviceId, desired_state_key
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.kv_publish import WriteResult

from . import messages as m
from .ports import KvWriterPort, RepliesPort

WRITE_CHUNK: Final = 1000


def _first_error(results: Sequence[object]) -> str | None:
    errors = [r for r in results if isinstance(r, BaseException)]
    return repr(errors[0]) if errors else None


class DesiredWriter:
    def __init__(
        self, *, writer: KvWriterPort, replies: RepliesPort, chunk: int = WRITE_CHUNK
    ) -> None:
        self._writer = writer
        self._replies = replies
        self._chunk = chunk

    def put(self, name: DeploymentName, devices: Sequence[DeviceId], value: bytes) -> None:
        for i in range(0, len(devices), self._chunk):
            self._put(name, devices[i : i + self._chunk], value)

    def delete(self, name: DeploymentName, devices: Sequence[DeviceId]) -> None:
        for i in range(0, len(devices), self._chunk):
            self._delete(name, devices[i : i + self._chunk])

    def _put(self, name: DeploymentName, devices: Sequence[DeviceId], value: bytes) -> None:
        items = [(desired_state_key(d, name), value) for d in devices]

        def done(results: list[WriteResult]) -> m.WritesDone:
            puts = tuple(
                (d, value, r if isinstance(r, int) else None)
                for d, r in zip(devices, results, strict=True)
            )
            return m.WritesDone(puts=puts, deletes=(), error=_first_error(results))

        self._replies.when_done(
            self._writer.put_many(BUCKET_DESIRED_STATE, items),
            on_result=done,
            on_error=lambda exc: m.WritesDone(
                puts=tuple((d, value, None) for d in devices), deletes=(), error=repr(exc)
            ),
        )

    def _delete(self, name: DeploymentName, devices: Sequence[DeviceId]) -> None:
        keys = [desired_state_key(d, name) for d in devices]

        def done(results: list[WriteResult]) -> m.WritesDone:
            deletes = tuple(
                (d, r if isinstance(r, int) else None)
                for d, r in zip(devices, results, strict=True)
            )
            return m.WritesDone(puts=(), deletes=deletes, error=_first_error(results))

        self._replies.when_done(
            self._writer.delete_many(BUCKET_DESIRED_STATE, keys),
            on_result=done,
            on_error=lambda exc: m.WritesDone(
                puts=(), deletes=tuple((d, None) for d in devices), error=repr(exc)
            ),
        )

    def read(self, name: DeploymentName, devices: Sequence[DeviceId]) -> None:
        """Re-read entries: each comes back as ``(device, revision, value)``: revision -1
        if it could not be read, 0 (and no value) if there is none."""
        devices = list(devices)
        keys = [desired_state_key(d, name) for d in devices]

        def done(results: list[KvEntry | BaseException | None]) -> m.Verified:
            read: list[tuple[DeviceId, int, bytes | None]] = []
            for device, result in zip(devices, results, strict=True):
                if isinstance(result, BaseException):
                    read.append((device, -1, None))
                elif result is None:
                    read.append((device, 0, None))
                else:
                    read.append((device, result.revision, bytes(result.value)))
            return m.Verified(entries=tuple(read), error=_first_error(results))

        self._replies.when_done(
            self._writer.get_many(BUCKET_DESIRED_STATE, keys),
            on_result=done,
            on_error=lambda exc: m.Verified(
                entries=tuple((d, -1, None) for d in devices), error=repr(exc)
            ),
        )

    def delete_orphans(self, name: DeploymentName, entries: Sequence[m.DesiredEntry]) -> None:
        """Delete entries of a name nobody owns; ``OrphansDeleted`` names those gone."""
        keys = [desired_state_key(e.device, e.deployment) for e in entries]

        def done(results: list[WriteResult]) -> m.OrphansDeleted:
            gone = tuple(e.device for e, r in zip(entries, results, strict=True)
                         if isinstance(r, int))  # fmt: skip
            return m.OrphansDeleted(
                name=name, devices=gone, failed=len(entries) - len(gone),
                error=_first_error(results),
            )  # fmt: skip

        self._replies.when_done(
            self._writer.delete_many(BUCKET_DESIRED_STATE, keys),
            on_result=done,
            on_error=lambda exc: m.OrphansDeleted(
                name=name, devices=(), failed=len(entries), error=repr(exc)
            ),
        )
