"""The enrollment desk: the thin actor between the enrollment subjects and the rules.

Why it exists: enrollment and renewal requests arrive on the loop (the subscriptions'
handlers only ``tell`` this actor), and answering one takes Kubernetes calls and,
for a revocation, a push to nats-server: blocking work that must never run on the loop
or hold up this actor. The desk checks each request (``intake.py``: malformed, unsigned,
stale or unanswerable requests are answered or dropped at once), answers a repeat
within a second from what it answered and drops one still in flight, bounds what is
in flight, and hands the rest to its worker threads (``rules.py``); the answer comes
back as a message and is published to the asker's inbox. Device deletions and
``decision: Revoked`` (from the Kubernetes watches) go to ``revocation.py`` the same way.

What it must never do: block, or let a failing request take it down: any error is an
answer (``pending``: ask again) and a log line, never a dead actor.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec

from fleet.contracts import EnrollmentReply, EnrollmentRequest, encode_enrollment
from fleet.runtime.actorkit.failfast import SupervisedActor
from fleet.runtime.aiokit.loop import tell_when_done

from .intake import Checked, RecentAnswers, Refused, take
from .revocation import Revocations
from .rules import EnrollmentRules

logger = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]
"""Sends an answer (subject, bytes) without waiting: the loop does it."""


class Asked(msgspec.Struct, frozen=True, kw_only=True):
    """A message on ``fleet.enroll`` or ``fleet.renew.<device>``, as it came."""

    subject: str
    reply: str
    data: bytes


class _Answered(msgspec.Struct, frozen=True, kw_only=True):
    checked: Checked
    answer: EnrollmentReply


class DevicesListed(msgspec.Struct, frozen=True, kw_only=True):
    names: tuple[str, ...]


class DeviceDeleted(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    public_key: str


class RevokeDecided(msgspec.Struct, frozen=True, kw_only=True):
    name: str


class EnrollmentDesk(SupervisedActor):
    def __init__(
        self,
        *,
        rules: EnrollmentRules,
        revocations: Revocations,
        publish: Publish,
        workers: int = 4,
        max_in_flight: int = 1000,
    ) -> None:
        super().__init__()
        self._rules = rules
        self._revocations = revocations
        self._publish = publish
        self._recent = RecentAnswers(max_in_flight=max_in_flight)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="enrollment"
        )
        self._devices: set[str] | None = None
        self.dropped = 0  # requests dropped (repeats in flight, or too many in flight)

    def on_stop(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Asked):
            self._asked(message)
        elif isinstance(message, _Answered):
            self._recent.done(message.checked.key, message.answer, now=time.monotonic())
            self._send(message.checked.reply, message.answer)
        elif isinstance(message, DeviceDeleted):
            self._recent.forget()
            if self._devices is not None:
                self._devices.discard(message.name)
            gone = message
            self._background(
                f"revoke {gone.name}",
                lambda: self._revocations.device_deleted(gone.name, public_key=gone.public_key),
            )
        elif isinstance(message, DevicesListed):
            self._listed(set(message.names))
        elif isinstance(message, RevokeDecided):
            self._recent.forget()
            self._background(
                f"revoke {message.name}", lambda: self._revocations.decided(message.name)
            )
        return None

    def _asked(self, msg: Asked) -> None:
        checked = take(msg.subject, msg.reply, msg.data, now=time.time())
        if isinstance(checked, Refused):
            if checked.reply:
                self._send(checked.reply, checked.answer())
            logger.info("refused a request on %s: %s", msg.subject[:100], checked.reason[:200])
            return
        seen, cached = self._recent.seen(checked.key, now=time.monotonic())
        if seen == "answered" and cached is not None:
            self._send(checked.reply, cached)
            return
        if seen == "in-flight" or self._recent.busy:
            self.dropped += 1
            return
        self._recent.start(checked.key)
        request = checked.request
        if isinstance(request, EnrollmentRequest):
            job = self._pool.submit(self._rules.enroll, request)
        else:
            job = self._pool.submit(self._rules.renew, request)
        tell_when_done(
            job,
            self.actor_ref,
            on_result=lambda answer: _Answered(checked=checked, answer=answer),
            on_error=lambda exc: _Answered(checked=checked, answer=_trouble(checked, exc)),
        )

    def _listed(self, names: set[str]) -> None:
        """A (re)list of Device resources: those gone since the last one were deleted
        while the watch was away."""
        gone = set() if self._devices is None else self._devices - names
        self._devices = names
        for name in sorted(gone):
            self.on_receive(DeviceDeleted(name=name, public_key=""))

    def _send(self, reply: str, answer: EnrollmentReply) -> None:
        self._publish(reply, encode_enrollment(answer))

    def _background(self, what: str, job: Callable[[], object]) -> None:
        def run() -> None:
            try:
                job()
            except Exception:
                logger.exception("%s failed (done again at the next start)", what)

        self._pool.submit(run)


def _trouble(checked: Checked, exc: BaseException) -> EnrollmentReply:
    logger.warning(
        "%s of device %s failed: %s", checked.kind, checked.request.device_id, exc, exc_info=exc
    )
    return EnrollmentReply(
        status="pending", reason=f"the operator could not answer now ({type(exc).__name__}); "
        "ask again", retry_after_s=10.0,
    )  # fmt: skip
