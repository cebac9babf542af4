"""EnrollmentRequest, BootstrapToken and the Device's key, as the enrollment rules see them.

Why it exists: the operator's enrollment rules (``fleet.actors.operator.enrollment``)
decide from three resources: the device's ``EnrollmentRequest`` (its key, a person's
decision, its phase), a ``BootstrapToken`` (expiry, uses, labels, the secret's hash) and
the ``Device`` (the key it is bound to). :class:`KubeEnrollmentStore` reads them as
small frozen records and writes the few changes the rules make: a new request, its
status, a token's use (a compare-and-swap on ``resourceVersion``: concurrent uses can
never overspend) and the Device's key.

Every method blocks: it runs on the operator's enrollment workers, never on an actor's
thread or the loop. What it must never do: overwrite a Device's key (``bind_device``
refuses with :class:`KubeConflict`), or parse what it reads without bounds (reads go
through :meth:`KubeClient.get`).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from fleet.contracts import API_VERSION, KIND_DEVICE, KIND_ENROLLMENT_REQUEST
from fleet.runtime.kube.client import (
    BOOTSTRAP_TOKENS,
    DEVICES,
    ENROLLMENT_REQUESTS,
    KubeClient,
    KubeConflict,
    KubeNotFound,
)


class EnrollmentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One EnrollmentRequest resource."""

    name: str
    device_id: str
    public_key: str
    decision: str = "Pending"
    phase: str = ""
    reason: str = ""
    approved_by: str = ""
    token_id: str = ""
    conditions: tuple[dict[str, Any], ...] = ()


class TokenRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One BootstrapToken resource (``expires`` None: unreadable, so expired)."""

    name: str
    expires: datetime.datetime | None
    uses_left: int
    labels: Mapping[str, str]
    secret_hash: str
    used_by: tuple[str, ...]
    resource_version: str


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _time(value: object) -> datetime.datetime | None:
    try:
        when = datetime.datetime.fromisoformat(_str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def request_record(obj: Mapping[str, Any]) -> EnrollmentRecord:
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    conditions = status.get("conditions")
    return EnrollmentRecord(
        name=_str(_dict(obj.get("metadata")).get("name")),
        device_id=_str(spec.get("deviceId")), public_key=_str(spec.get("publicKey")),
        decision=_str(spec.get("decision")) or "Pending", phase=_str(status.get("phase")),
        reason=_str(status.get("reason")), approved_by=_str(status.get("approvedBy")),
        token_id=_str(spec.get("tokenId")),
        conditions=tuple(c for c in conditions if isinstance(c, dict))
        if isinstance(conditions, list) else (),
    )  # fmt: skip


def token_record(obj: Mapping[str, Any]) -> TokenRecord:
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    uses, used = spec.get("usesLeft"), status.get("usedBy")
    labels = {k: v for k, v in _dict(spec.get("labels")).items() if isinstance(v, str)}
    metadata = _dict(obj.get("metadata"))
    return TokenRecord(
        name=_str(metadata.get("name")), expires=_time(spec.get("expires")),
        uses_left=uses if isinstance(uses, int) and not isinstance(uses, bool) else 0,
        labels=labels, secret_hash=_str(spec.get("secretHash")),
        used_by=tuple(u for u in used if isinstance(u, str)) if isinstance(used, list) else (),
        resource_version=_str(metadata.get("resourceVersion")),
    )  # fmt: skip


class KubeEnrollmentStore:
    """The enrollment resources through a :class:`KubeClient` (blocking; see the module)."""

    def __init__(self, client: KubeClient, *, pending_recount: float = 30.0) -> None:
        self._client = client
        self._recount = pending_recount
        self._pending: tuple[float, int] | None = None  # (when counted, count since)

    def get_request(self, name: str) -> EnrollmentRecord | None:
        try:
            return request_record(self._client.get(ENROLLMENT_REQUESTS, namespace=None, name=name))
        except KubeNotFound:
            return None

    def list_requests(self) -> list[EnrollmentRecord]:
        listed = self._client.list(ENROLLMENT_REQUESTS, namespace=None)
        items = listed.get("items")
        return [request_record(o) for o in items if isinstance(o, dict)] if isinstance(
            items, list
        ) else []  # fmt: skip

    def count_pending(self) -> int:
        """Pending requests: counted by a list at most every ``pending_recount`` s, and
        kept up to date in between by :meth:`create_request` (a bound, not a ledger)."""
        now = time.monotonic()
        if self._pending is None or now - self._pending[0] > self._recount:
            count = sum(1 for r in self.list_requests() if r.phase in ("", "Pending"))
            self._pending = (now, count)
        return self._pending[1]

    def create_request(self, name: str, spec: Mapping[str, Any]) -> None:
        """Create it (``KubeConflict`` if it exists), its status ``Pending``."""
        body = {"apiVersion": API_VERSION, "kind": KIND_ENROLLMENT_REQUEST,
                "metadata": {"name": name}, "spec": dict(spec)}  # fmt: skip
        self._client.create(ENROLLMENT_REQUESTS, body=body)
        if self._pending is not None:
            self._pending = (self._pending[0], self._pending[1] + 1)
        self.set_status(name, {"phase": "Pending"})

    def set_status(self, name: str, status: Mapping[str, Any]) -> None:
        self._client.patch(
            ENROLLMENT_REQUESTS, namespace=None, name=name, body={"status": dict(status)},
            status=True,
        )  # fmt: skip

    def get_token(self, name: str) -> TokenRecord | None:
        try:
            return token_record(self._client.get(BOOTSTRAP_TOKENS, namespace=None, name=name))
        except KubeNotFound:
            return None

    def consume_token(self, token: TokenRecord, device_id: str) -> None:
        """One use of ``token`` by ``device_id``: ``usesLeft`` - 1 and the device in
        ``usedBy``, in one patch, only if the token is still at the version read
        (``KubeConflict`` otherwise: read it again)."""
        body = {
            "metadata": {"resourceVersion": token.resource_version},
            "spec": {"usesLeft": token.uses_left - 1},
            "status": {"usedBy": [*token.used_by, device_id]},
        }
        self._client.patch(BOOTSTRAP_TOKENS, namespace=None, name=token.name, body=body)

    def device_key(self, name: str) -> str | None:
        """The public key the Device resource ``name`` is bound to ("" unbound, None: no
        Device)."""
        try:
            obj = self._client.get(DEVICES, namespace=None, name=name)
        except KubeNotFound:
            return None
        return _str(_dict(obj.get("spec")).get("publicKey"))

    def device_names(self) -> set[str]:
        listed = self._client.list_objects(DEVICES, namespace=None)
        return {obj.name for obj in listed.objects}

    def bind_device(
        self, name: str, *, device_id: str, public_key: str, labels: Mapping[str, str]
    ) -> None:
        """Record ``public_key`` and the approved ``labels`` in the Device resource
        (created if missing); a Device bound to this key already is left as it is (its
        labels may have been changed by a person since), one bound to another key too
        (:class:`KubeConflict`)."""
        spec = {"deviceId": device_id, "publicKey": public_key, "labels": dict(labels)}
        body = {"apiVersion": API_VERSION, "kind": KIND_DEVICE, "metadata": {"name": name},
                "spec": spec}  # fmt: skip
        try:
            self._client.create(DEVICES, body=body)
            return
        except KubeConflict:
            pass
        bound = self.device_key(name)
        if bound == public_key:
            return
        if bound:
            raise KubeConflict(f"Device {name} is bound to another key ({bound[:12]}...)")
        self._client.patch(
            DEVICES, namespace=None, name=name,
            body={"spec": {"deviceId": device_id, "publicKey": public_key,
                           "labels": dict(labels)}},
        )  # fmt: skip
