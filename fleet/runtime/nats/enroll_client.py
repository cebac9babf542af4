"""The device's side of the enrollment wire: signed requests out, bounded replies in.

Why it exists: a device joins by sending an
:class:`~fleet.contracts.enrollment.EnrollmentRequest` to :data:`subjects.ENROLL` over its
bootstrap connection, and renews by sending a
:class:`~fleet.contracts.enrollment.RenewalRequest` to ``subjects.renew(<device>)`` over its
own (docs/agent.md, "Enrollment"). Both are signed by the device's key over
:func:`~fleet.contracts.enrollment.signed_bytes` and carry ``at`` = now, so the operator
can tell that the key's holder sent them, and recently. A reply is decoded with the
contract's bounded decoder before anything is believed: a malformed, oversized or
impossible reply (an ``approved`` whose JWT is not for this key, or has already
expired) is logged and counts as no reply (asked again after a backoff). Each status
is logged once when it changes: ``pending`` at INFO, ``denied`` and ``refused`` at ERROR
every time (a person has to act).

What it must never do: send or log the seed (only the signature and the public key
leave), raise on a reply (any bytes give a reply or None), or be used off its loop.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping

import msgspec

from fleet.contracts import (
    DeviceId,
    EnrollmentReply,
    EnrollmentRequest,
    Inventory,
    RenewalRequest,
    decode_enrollment_reply,
    encode_enrollment,
    signed_bytes,
)
from fleet.errors import BusError, BusUnavailable, ConfigError, ContractError
from fleet.runtime.nats.claims import read_unverified
from fleet.runtime.nats.device_key import DeviceKey, jwt_subject
from fleet.runtime.nats.transport import Transport

logger = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def jwt_times(jwt: str) -> tuple[float, float] | None:
    """A JWT's ``(iat, exp)`` in seconds since the epoch, read unverified; None when it
    never expires or holds no readable times."""
    try:
        claims = read_unverified(jwt)
    except ConfigError:
        return None
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool) or exp <= 0:
        return None
    issued = float(iat) if isinstance(iat, int) and not isinstance(iat, bool) else float(exp)
    return min(issued, float(exp)), float(exp)


class EnrollmentClient:
    """Builds and signs this device's requests, sends them, and judges the replies."""

    def __init__(
        self,
        *,
        device_id: DeviceId,
        key: DeviceKey,
        agent_version: str,
        token: str | None = None,
        timeout: float = 5.0,
        clock: Clock = utc_now,
    ) -> None:
        self.device_id = device_id
        self.key = key
        self._version = agent_version
        self._token = token
        self._timeout = timeout
        self._clock = clock
        self._last: dict[str, str] = {}  # what -> the last status logged

    def enrollment_request(
        self, *, labels: Mapping[str, str], inventory: Inventory
    ) -> EnrollmentRequest:
        """A signed request to join, as of now (``ContractError`` if a field is invalid)."""
        request = EnrollmentRequest(
            device_id=self.device_id, public_key=self.key.public_key, labels=dict(labels),
            inventory=inventory, agent_version=self._version, at=self._clock(),
            token=self._token,
        )  # fmt: skip
        return msgspec.structs.replace(request, signature=self.key.sign(signed_bytes(request)))

    def renewal_request(self) -> RenewalRequest:
        """A signed request for a fresh JWT, as of now."""
        request = RenewalRequest(
            device_id=self.device_id, public_key=self.key.public_key, at=self._clock()
        )
        return msgspec.structs.replace(request, signature=self.key.sign(signed_bytes(request)))

    async def ask(
        self,
        transport: Transport,
        subject: str,
        request: EnrollmentRequest | RenewalRequest,
        *,
        what: str,
    ) -> EnrollmentReply | None:
        """Send ``request`` to ``subject``; the operator's valid reply, or None (no answer,
        or a reply that is malformed or impossible: logged)."""
        try:
            answer = await transport.request(
                subject, encode_enrollment(request), timeout=self._timeout
            )
        except BusUnavailable as exc:
            logger.info("%s of %s: no answer (%s)", what, self.device_id, exc)
            return None
        except BusError as exc:
            logger.warning("%s of %s: NATS refused the request (%s)", what, self.device_id, exc)
            return None
        try:
            reply = decode_enrollment_reply(answer.data)
        except ContractError as exc:
            logger.warning(
                "%s of %s: malformed reply from the operator (%s); asking again", what,
                self.device_id, str(exc)[:300],
            )  # fmt: skip
            return None
        problem = self._impossible(reply)
        if problem is not None:
            logger.warning("%s of %s: %s; asking again", what, self.device_id, problem)
            return None
        self._explain(reply, what=what)
        return reply

    def _impossible(self, reply: EnrollmentReply) -> str | None:
        if reply.status != "approved" or reply.jwt is None:
            return None
        if jwt_subject(reply.jwt) != self.key.public_key:
            return f"the approved JWT is not for this device's key {self.key.public_key}"
        times = jwt_times(reply.jwt)
        if times is not None and times[1] <= time.time():
            return "the approved JWT has already expired (is the device's clock right?)"
        return None

    def _explain(self, reply: EnrollmentReply, *, what: str) -> None:
        reason = f": {reply.reason[:500]}" if reply.reason else ""
        changed = self._last.get(what) != reply.status
        self._last[what] = reply.status
        if reply.status in ("denied", "refused"):
            logger.error(
                "%s of %s (key %s) %s%s. The device keeps running its workloads and asks "
                "again slowly", what, self.device_id, self.key.public_key, reply.status, reason,
            )  # fmt: skip
        elif reply.status == "pending":
            (logger.info if changed else logger.debug)(
                "%s of %s (key %s) is pending approval%s", what, self.device_id,
                self.key.public_key, reason,
            )  # fmt: skip
        else:
            times = jwt_times(reply.jwt or "")
            until = "never" if times is None else dt.datetime.fromtimestamp(times[1], dt.UTC)
            logger.info(
                "%s of %s approved: credentials valid until %s", what, self.device_id, until
            )
