"""The operator's authority at work: device JWTs signed, keys revoked and kept revoked.

Why it exists: enrollment and revocation (``fleet.actors.operator.enrollment``) need
three things of the fleet's :class:`~fleet.runtime.nats.identity.Authority`: a user JWT
for a device's public key with exactly that device's permissions; a revocation that is
kept (``revocations.json``, before anything else) and pushed to nats-server, which
closes the device's connections at once; and, at start, the revocations pushed again.
:class:`DeviceSigner` is that, over a system-account connection (the only kind of
user the server takes an account update from).

Its methods block (a push waits for the server's answer on the loop): they run on the
enrollment workers, never on the loop or an actor's thread. What it must never do: sign
a JWT for a revoked key, push a revocation it has not written down first, or write
``revocations.json`` or push the account once the write fence (the leader Lease) says
no: a deposed leader's older copy could otherwise un-revoke a key.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from pathlib import Path

from fleet.contracts import DeviceId
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.fencing import OPEN, WriteFence
from fleet.runtime.nats.authority_files import save_revocations
from fleet.runtime.nats.identity import Authority, push_account_jwt
from fleet.runtime.nats.permissions import device_permissions
from fleet.runtime.nats.transport import Transport

logger = logging.getLogger(__name__)


class DeviceSigner:
    """Signs device JWTs and revokes keys (thread-safe; every method may block)."""

    def __init__(
        self,
        *,
        authority: Authority,
        directory: Path | None,
        system: Transport | None,
        loop: EventLoopThread | None,
        push_timeout: float = 5.0,
        fence: WriteFence = OPEN,
    ) -> None:
        """``directory``: where revocations are kept (None: nowhere, tests only);
        ``system``/``loop``: a system-account connection and its loop (None: revocations
        are not pushed, tests only); ``fence``: asked before every write and push."""
        self._fence = fence
        self._authority = authority
        self._directory = directory
        self._system = system
        self._loop = loop
        self._timeout = push_timeout
        self._lock = threading.Lock()

    def device_jwt(self, device_id: str, public_key: str, *, expires_in: float) -> tuple[str, str]:
        """(JWT, its expiry as RFC 3339) for ``public_key`` as device ``device_id``."""
        if self.revoked(public_key):
            raise PermissionError(f"key {public_key[:12]}... is revoked")
        permissions = device_permissions(DeviceId.try_new(device_id))
        token = self._authority.user_jwt(public_key, permissions, expires_in=expires_in)
        expires = datetime.datetime.fromtimestamp(int(time.time() + expires_in), tz=datetime.UTC)
        return token, expires.strftime("%Y-%m-%dT%H:%M:%SZ")

    def revoked(self, public_key: str) -> bool:
        with self._lock:
            return public_key in self._authority.revocations

    def revoke(self, public_key: str) -> None:
        """Revoke ``public_key``: written down, then pushed (a failed push raises; the
        next :meth:`push` or a retry sends it again)."""
        self._fence.check(f"revoke key {public_key[:12]}...")
        with self._lock:
            if public_key not in self._authority.revocations:
                self._fence.check("write revocations.json")
                self._authority.revoke(public_key)
                if self._directory is not None:
                    save_revocations(self._directory, self._authority.revocations)
        logger.info("revoked key %s", public_key)
        self.push()

    def revoke_quietly(self, public_keys: list[str]) -> int:
        """Write down revocations found at start (no push: :meth:`push` follows); how many
        were new."""
        self._fence.check("write down revocations")
        with self._lock:
            new = [k for k in public_keys if k not in self._authority.revocations]
            if new:
                self._fence.check("write revocations.json")
            for key in new:
                self._authority.revoke(key)
            if new and self._directory is not None:
                save_revocations(self._directory, self._authority.revocations)
        return len(new)

    def push(self) -> None:
        """Push the account JWT, with every revocation, to the server."""
        if self._system is None or self._loop is None:
            return
        self._fence.check("push the account JWT")
        with self._lock:
            account_jwt = self._authority.account_jwt()
        self._loop.run(
            push_account_jwt(self._system, account_jwt, timeout=self._timeout),
            timeout=self._timeout + 5,
        )
