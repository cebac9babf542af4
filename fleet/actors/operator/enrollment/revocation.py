"""Revoking a device's key: when its Device resource goes, when a person says so, and
again at every start.

Why it exists: a device is stopped by revoking its key in the fleet account's JWT
(nats-server closes its connections within seconds and refuses its JWTs issued up to
then) and by refusing its renewals. Two things ask for it: deleting the ``Device``
resource (``kubectl delete fleetdev``, ``fleetctl device revoke``), and
``spec.decision: Revoked`` on its EnrollmentRequest (``fleetctl device revoke``, so a
deletion the operator missed while it was down is still seen). :class:`Revocations`
revokes the key (written down, then pushed: :class:`~fleet.runtime.nats.signer.DeviceSigner`)
and then marks the EnrollmentRequest ``Revoked``; :meth:`Revocations.rebuild` at start
finds every key that must be revoked (EnrollmentRequests ``Revoked``, decided
``Revoked``, or ``Approved`` whose Device is gone) and pushes them all once.

Plain and synchronous; the ports block (it runs on the enrollment workers). What it
must never do: mark a request ``Revoked`` before the key is written down.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable

from .ports import EnrollmentStorePort, SignerPort
from .rules import rfc3339

logger = logging.getLogger(__name__)


class Revocations:
    """See the module docstring."""

    def __init__(
        self,
        *,
        store: EnrollmentStorePort,
        signer: SignerPort,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock or (lambda: datetime.datetime.now(tz=datetime.UTC))

    def device_deleted(self, name: str, *, public_key: str) -> bool:
        """The Device resource ``name`` is gone: revoke its key (the one it recorded, else
        the enrolled one). Whether a key was revoked."""
        record = self._store.get_request(name)
        key = public_key or (record.public_key if record is not None else "")
        if not key:
            return False  # never enrolled: nothing to revoke
        if record is not None and record.phase == "Revoked" and self._signer.revoked(key):
            # Already revoked and marked (``fleetctl device revoke`` decides, then deletes
            # the Device): pushing again and rewriting the reason would say nothing true.
            return False
        self._revoke(name, key, why="its Device resource was deleted", marked=record is not None)
        return True

    def _revoke(self, name: str, key: str, *, why: str, marked: bool) -> None:
        self._signer.revoke(key)
        logger.warning("device %s revoked: %s", name, why)
        if marked:
            self._store.set_status(
                name, {"phase": "Revoked", "reason": why, "revokedAt": rfc3339(self._clock())}
            )

    def rebuild(self) -> list[str]:
        """At start: every key that must be revoked is written down and pushed once;
        requests not yet marked are marked. The names revoked now (not already)."""
        requests = self._store.list_requests()
        devices = self._store.device_names()
        keys: list[str] = []
        to_mark: list[tuple[str, str]] = []
        for record in requests:
            if not record.public_key:
                continue
            if record.phase == "Revoked":
                keys.append(record.public_key)
            elif record.decision == "Revoked":
                keys.append(record.public_key)
                to_mark.append((record.name, "revoked by a person"))
            elif record.phase == "Approved" and record.name not in devices:
                keys.append(record.public_key)
                to_mark.append((record.name, "its Device resource was deleted"))
        new = self._signer.revoke_quietly(keys)
        self._signer.push()
        for name, why in to_mark:
            self._store.set_status(
                name, {"phase": "Revoked", "reason": why, "revokedAt": rfc3339(self._clock())}
            )
        logger.info("revocations pushed: %d keys (%d new at this start)", len(keys), new)
        return [name for name, _ in to_mark]

    def decided(self, name: str) -> bool:
        """A person set ``decision: Revoked`` on ``name``: revoke it unless it is already."""
        record = self._store.get_request(name)
        if record is None or record.decision != "Revoked" or record.phase == "Revoked":
            return False
        if record.public_key:
            self._revoke(name, record.public_key, why="revoked by a person", marked=True)
        return True
