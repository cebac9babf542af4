"""What the operator answers a device that asks to join, or for a fresh credential.

Why it exists: enrollment is a decision taken across three resources (the device's
``EnrollmentRequest``, a ``BootstrapToken``, the ``Device`` that records the key) that
must stay true whatever order requests come in, whoever asks twice, and whenever the
operator crashes. :class:`EnrollmentRules` holds that decision:

* one EnrollmentRequest per device id (named as the Device resource is), created
  ``Pending`` on the first request; a request with another key than the one the
  EnrollmentRequest or the Device holds is refused, and the EnrollmentRequest gets a
  ``KeyConflict`` condition naming the other key (the enrolled key is never replaced:
  delete the EnrollmentRequest to enroll the id anew);
* a revoked key, or a device a person revoked or denied, is refused or denied;
* approved (by a person, ``spec.decision: Approved``, or by a valid token): the Device
  records the key first, then the EnrollmentRequest says ``Approved``, then the JWT is
  signed. Each step is idempotent, so a device that asks again after a crash anywhere
  in between ends approved once (the token's use is recorded with the use itself);
* a token that may not approve (expired, used up, wrong secret, a label it does not
  grant) is refused with the reason, and nothing is stored;
* at most ``max_pending`` EnrollmentRequests wait for a person: beyond, refused;
* a renewal is answered with a fresh JWT only for an approved, unrevoked device, with
  the key it enrolled.

Plain and synchronous; the ports block (it runs on the enrollment workers). What it
must never do: sign a JWT for a key that is not the device's enrolled one.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any, Final

import msgspec

from fleet.contracts import EnrollmentReply, EnrollmentRequest, RenewalRequest
from fleet.runtime.kube.client import KubeConflict
from fleet.runtime.kube.enrollment_store import EnrollmentRecord

from ..mirror import device_resource_name
from . import tokens
from .ports import EnrollmentStorePort, SignerPort

logger = logging.getLogger(__name__)

DAY: Final = 86_400.0
PENDING_RETRY_S: Final = 30.0
"""How soon a pending device asks again (``fleet-operator --pending-retry``): an approval
is heard at the device's next ask."""


def rfc3339(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _refused(reason: str) -> EnrollmentReply:
    return EnrollmentReply(status="refused", reason=reason[:1000])


class EnrollmentRules:
    """See the module docstring."""

    def __init__(
        self,
        *,
        store: EnrollmentStorePort,
        signer: SignerPort,
        credential_ttl: float = DAY,
        max_pending: int = 10_000,
        pending_retry: float = PENDING_RETRY_S,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self._store = store
        self._signer = signer
        self._ttl = credential_ttl
        self._max_pending = max_pending
        self._pending_retry = pending_retry
        self._clock = clock or (lambda: datetime.datetime.now(tz=datetime.UTC))

    # -- enrollment ---------------------------------------------------------------------

    def enroll(self, request: EnrollmentRequest) -> EnrollmentReply:
        device, key = str(request.device_id), request.public_key
        name = device_resource_name(device)
        if self._signer.revoked(key):
            return _refused("this key is revoked")
        record = self._store.get_request(name)
        if record is not None and record.device_id != device:
            return _refused(f"device id {device!r} collides with {record.device_id!r}")
        other = record.public_key if record is not None else ""
        bound = self._store.device_key(name) or ""
        for held in (other, bound):
            if held and held != key:
                return self._conflict(record, name, request, held)
        if record is None:
            return self._first(name, request)
        return self._again(record, request)

    def _again(self, record: EnrollmentRecord, request: EnrollmentRequest) -> EnrollmentReply:
        """A request of the key this device id's EnrollmentRequest holds."""
        name = record.name
        if record.decision == "Revoked" or record.phase == "Revoked":
            return _refused("this device is revoked")
        if record.decision == "Denied":
            if record.phase != "Denied":
                self._store.set_status(name, {"phase": "Denied", "reason": "denied by a person"})
            return EnrollmentReply(status="denied", reason="denied by a person")
        if record.phase == "Approved":
            return self._approve(name, request, approved_by=record.approved_by)
        if record.decision == "Approved":
            return self._approve(name, request, approved_by="fleetctl")
        if request.token is not None:
            return self._by_token(name, request)
        return self._pending()

    def _first(self, name: str, request: EnrollmentRequest) -> EnrollmentReply:
        if request.token is not None:
            # Checked before anything is stored: a bad token stores nothing.
            why = tokens.check(
                self._store.get_token(tokens.token_id(request.token)), request, now=self._clock()
            )
            if why is not None:
                return _refused(why)
        elif self._store.count_pending() >= self._max_pending:
            return _refused(
                f"too many pending enrollment requests ({self._max_pending}); ask again later"
            )
        spec: dict[str, Any] = {
            "deviceId": str(request.device_id), "publicKey": request.public_key,
            "labels": dict(request.labels), "inventory": msgspec.to_builtins(request.inventory),
            "agentVersion": request.agent_version, "decision": "Pending",
        }  # fmt: skip
        if request.token is not None:
            spec["tokenId"] = tokens.token_id(request.token)
        try:
            self._store.create_request(name, spec)
        except KubeConflict:  # created meanwhile (asked twice at once): read it once more
            record = self._store.get_request(name)
            if record is None or record.public_key != request.public_key:
                return EnrollmentReply(status="pending", reason="asked twice at once; ask again")
            return self._again(record, request)
        logger.info("enrollment request from device %s (key %s)", request.device_id,
                    request.public_key)  # fmt: skip
        if request.token is not None:
            return self._by_token(name, request)
        return self._pending()

    def _by_token(self, name: str, request: EnrollmentRequest) -> EnrollmentReply:
        why = tokens.use(self._store, request, now=self._clock())
        if why is not None:
            return _refused(why)
        return self._approve(
            name, request, approved_by=f"token {tokens.token_id(request.token or '')}"
        )

    def _approve(
        self, name: str, request: EnrollmentRequest, *, approved_by: str
    ) -> EnrollmentReply:
        device, key = str(request.device_id), request.public_key
        try:
            self._store.bind_device(
                name, device_id=device, public_key=key, labels=dict(request.labels)
            )
        except KubeConflict as exc:
            return _refused(f"the Device resource holds another key: {exc}")
        self._store.set_status(name, {
            "phase": "Approved", "approvedBy": approved_by or "fleetctl", "reason": "",
            "approvedAt": rfc3339(self._clock()),
        })  # fmt: skip
        jwt, expires = self._signer.device_jwt(device, key, expires_in=self._ttl)
        logger.info("device %s approved (%s)", device, approved_by or "fleetctl")
        return EnrollmentReply(
            status="approved", jwt=jwt, expires_at=datetime.datetime.fromisoformat(expires)
        )

    def _conflict(
        self, record: EnrollmentRecord | None, name: str, request: EnrollmentRequest, held: str
    ) -> EnrollmentReply:
        reason = f"device {request.device_id} is enrolled with another key"
        message = f"key {request.public_key} asked to enroll this device id, enrolled as {held}"
        if record is not None:
            condition = {
                "type": "KeyConflict", "status": "True", "reason": "AnotherKey",
                "message": message[:1000], "lastTransitionTime": rfc3339(self._clock()),
            }  # fmt: skip
            others = [c for c in record.conditions if c.get("type") != "KeyConflict"]
            self._store.set_status(name, {"conditions": [*others, condition]})
        logger.warning("refused enrollment of %s: %s", request.device_id, message)
        return _refused(reason)

    def _pending(self) -> EnrollmentReply:
        return EnrollmentReply(
            status="pending", reason="waiting for approval (fleetctl enroll approve)",
            retry_after_s=self._pending_retry,
        )  # fmt: skip

    # -- renewal ------------------------------------------------------------------------

    def renew(self, request: RenewalRequest) -> EnrollmentReply:
        device, key = str(request.device_id), request.public_key
        record = self._store.get_request(device_resource_name(device))
        if record is None or record.device_id != device:
            return _refused(f"device {device} is not enrolled")
        if record.public_key != key:
            return _refused(f"device {device} is enrolled with another key")
        if self._signer.revoked(key) or "Revoked" in (record.decision, record.phase):
            return _refused(f"device {device} is revoked")
        if record.phase != "Approved":
            return _refused(f"device {device} is not approved ({record.phase or 'Pending'})")
        jwt, expires = self._signer.device_jwt(device, key, expires_in=self._ttl)
        return EnrollmentReply(
            status="approved", jwt=jwt, expires_at=datetime.datetime.fromisoformat(expires)
        )
