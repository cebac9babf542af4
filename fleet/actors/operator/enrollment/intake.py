"""What arrives on ``fleet.enroll`` and ``fleet.renew.<device>``, checked before anything.

Why it exists: these subjects are the only ones a device without credentials may
publish to, so everything here is hostile until shown otherwise. :func:`take` turns one
message into a checked request, or into the reason it is refused: the bytes are
decoded bounded (:mod:`fleet.contracts.enrollment`: 16 KiB, nesting, every field), the
signature must be the request's own key's, ``at`` must be within the window of the
operator's clock (a captured request cannot be replayed later), a renewal must name
the device of its subject, and the answer must go to an inbox of the asker's kind: the
operator may answer any subject, so a reply subject such as ``$KV.desired-state.<d>.x``
would otherwise make it write into a bucket. :class:`RecentAnswers` answers a repeated
request within a second from what it answered, and drops one still being handled.

Plain and synchronous, no I/O. What it must never do: raise on any input.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Final, Literal

import msgspec

from fleet.contracts import (
    EnrollmentReply,
    EnrollmentRequest,
    RenewalRequest,
    decode_enrollment_request,
    decode_renewal_request,
    signed_bytes,
)
from fleet.errors import ContractError
from fleet.runtime.nats import subjects
from fleet.runtime.nats.claims import verify_signature

WINDOW_S: Final = 300.0
_INBOX_TAIL: Final = re.compile(r"(?:\.[-_a-zA-Z0-9]{1,64}){1,4}")
_RENEW_PREFIX: Final = "fleet.renew."

Kind = Literal["enroll", "renew"]


class Checked(msgspec.Struct, frozen=True, kw_only=True):
    """A request that passed intake: ``key`` identifies it for :class:`RecentAnswers`."""

    kind: Kind
    request: EnrollmentRequest | RenewalRequest
    reply: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, str(self.request.device_id), self.request.public_key)


class Refused(msgspec.Struct, frozen=True, kw_only=True):
    """Refused at intake: answer ``reason`` to ``reply`` ("" : no valid inbox, drop it)."""

    reply: str
    reason: str

    def answer(self) -> EnrollmentReply:
        return EnrollmentReply(status="refused", reason=self.reason[:1000])


def _inbox_ok(reply: str, prefix: str) -> bool:
    return reply.startswith(prefix) and _INBOX_TAIL.fullmatch(reply[len(prefix) :]) is not None


def take(subject: str, reply: str, data: bytes, *, now: float) -> Checked | Refused:
    """Check one message (see the module docstring); total."""
    decoded = _decode(subject, reply, data)
    if isinstance(decoded, Refused):
        return decoded
    request = decoded.request
    why = None
    if not request.signature or not verify_signature(
        request.public_key, signed_bytes(request), request.signature
    ):
        why = "signature does not verify with public_key"
    elif abs(skew := request.at.timestamp() - now) > WINDOW_S:
        why = (
            f"request time is {skew:+.0f} s from the operator's clock (at most "
            f"{WINDOW_S:.0f} s: a replayed request, or a clock out of sync)"
        )
    return decoded if why is None else Refused(reply=reply, reason=why)


def _decode(subject: str, reply: str, data: bytes) -> Checked | Refused:
    """The request in ``data``, if it may be answered at ``reply``; not yet verified."""
    try:
        if subject == subjects.ENROLL:
            if not _inbox_ok(reply, subjects.BOOTSTRAP_INBOX_PREFIX):
                return Refused(reply="", reason="no bootstrap inbox to answer")
            return Checked(kind="enroll", request=decode_enrollment_request(data), reply=reply)
        if subject.startswith(_RENEW_PREFIX):
            device = subject[len(_RENEW_PREFIX) :]
            if not _inbox_ok(reply, f"_INBOX_device_{device}"):
                return Refused(reply="", reason="no inbox of the device to answer")
            return Checked(kind="renew", request=_renewal_of(device, data), reply=reply)
    except ContractError as exc:
        return Refused(reply=reply, reason=str(exc))
    return Refused(reply="", reason=f"not an enrollment subject: {subject[:100]!r}")


def _renewal_of(device: str, data: bytes) -> RenewalRequest:
    renewal = decode_renewal_request(data)
    if str(renewal.device_id) != device:
        raise ContractError(
            f"device_id {renewal.device_id!r} is not the subject's device {device!r}",
            field="device_id",
        )
    return renewal


Seen = Literal["new", "in-flight", "answered"]


class RecentAnswers:
    """Per request key: in flight, or answered within ``hold`` seconds (and what)."""

    def __init__(self, *, hold: float = 1.0, max_in_flight: int = 1000) -> None:
        self._hold = hold
        self._max = max_in_flight
        self._in_flight: set[tuple[str, str, str]] = set()
        self._answers: OrderedDict[tuple[str, str, str], tuple[float, EnrollmentReply]] = (
            OrderedDict()
        )

    @property
    def busy(self) -> bool:
        """As many requests in flight as allowed: drop new ones (devices ask again)."""
        return len(self._in_flight) >= self._max

    def seen(self, key: tuple[str, str, str], *, now: float) -> tuple[Seen, EnrollmentReply | None]:
        while self._answers:
            oldest, (when, _) = next(iter(self._answers.items()))
            if now - when <= self._hold:
                break
            del self._answers[oldest]
        if key in self._in_flight:
            return "in-flight", None
        cached = self._answers.get(key)
        if cached is not None:
            return "answered", cached[1]
        return "new", None

    def forget(self) -> None:
        """Drop every answer kept (a revocation: an ``approved`` must not be repeated)."""
        self._answers.clear()

    def start(self, key: tuple[str, str, str]) -> None:
        self._in_flight.add(key)

    def done(self, key: tuple[str, str, str], answer: EnrollmentReply, *, now: float) -> None:
        self._in_flight.discard(key)
        self._answers.pop(key, None)
        self._answers[key] = (now, answer)
