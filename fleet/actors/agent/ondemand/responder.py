"""The actor that answers ``fleetctl logs`` and ``fleetctl describe device``.

Why it exists: an answer needs podman (blocking calls: an actor's own thread is where
they belong, never the event loop) and a followed log needs state over time (a session,
its reader, its deadline). Requests come already rate-limited by :mod:`.gate` and with
an inbox to answer (:mod:`fleet.runtime.nats.device_requests`); here each is decoded
bounded (a malformed one gets a ``bad-request`` answer naming the field), resolved to
one of the device's own containers (:mod:`.logs`), and answered in chunks.

A followed log (``follow``) is a session: the first chunk names it, a reader thread
buffers the container's new lines (:class:`~fleet.runtime.podman.port.LogFollower`),
and every :data:`TICK_S` the buffered lines go out. The requester renews the session
(the same request with its ``session``, to a fresh reply inbox) within
:data:`~fleet.contracts.ondemand.FOLLOW_WINDOW_S`, and each renewal is acknowledged; a
session not renewed, older than :data:`~fleet.contracts.ondemand.MAX_FOLLOW_S`, or
whose container stopped, ends with a last chunk that says why. At most
:data:`MAX_SESSIONS` at once, and never more than
:data:`~fleet.contracts.ondemand.MAX_REPLIES_PER_REQUEST` messages to one reply inbox.

What it must never do: raise out of a message (an actor that dies stops the agent:
every failure becomes an answer), call NATS itself (it hands bytes to ``answer``), or
keep a reader open after its session ended or the actor stopped.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, Final

import msgspec

from fleet.contracts import DeviceId
from fleet.contracts.ondemand import (
    DESCRIBE,
    FOLLOW_WINDOW_S,
    MAX_FOLLOW_S,
    MAX_LOG_TAIL,
    MAX_REPLIES_PER_REQUEST,
    DeviceDescription,
    ErrorCode,
    LogsChunk,
    LogsRequest,
    OnDemandError,
    decode_describe_request,
    decode_logs_request,
    encode_answer,
)
from fleet.errors import ContractError
from fleet.runtime.actorkit.failfast import SupervisedActor
from fleet.runtime.aiokit.timers import TimerPort
from fleet.runtime.nats.device_requests import DeviceRequest
from fleet.runtime.podman.port import ContainerRuntime, LogFollower, LogSource

from .book import Snapshot
from .describe import describe
from .logs import Target, chunks, error_chunk, resolve

logger = logging.getLogger(__name__)

TICK_S: Final = 0.25
"""How often a followed log's new lines go out (at most 4 chunks a second a session)."""
MAX_SESSIONS: Final = 4
"""Followed logs open at once on one device."""
FOLLOW_BUFFER_LINES: Final = 2 * MAX_LOG_TAIL
"""Lines a followed log buffers between ticks; beyond, the oldest are counted as skipped."""
TAIL_WAIT_S: Final = 10.0
"""How long a tail (without follow) may take podman to send."""

Answer = Callable[[str, bytes], object]
"""Publishes bytes to a reply inbox (thread-safe, returns at once)."""


class Asked(msgspec.Struct, frozen=True, kw_only=True):
    request: DeviceRequest


class FollowTick(msgspec.Struct, frozen=True):
    pass


class _Session:
    """One followed log (mutable: it never leaves the actor)."""

    def __init__(
        self, *, ident: str, request: LogsRequest, target: Target, reader: LogFollower,
        reply: str, requester: str, now: float,
    ) -> None:  # fmt: skip
        self.ident = ident
        self.requester = requester  # only who started it may renew it
        self.request = request
        self.target = target
        self.reader = reader
        self.reply = reply
        self.sent_to_reply = 0  # messages sent to ``reply`` (at most MAX_REPLIES_PER_REQUEST)
        self.seq = 0
        self.started = now
        self.deadline = now + FOLLOW_WINDOW_S


class OnDemandResponder(SupervisedActor):
    def __init__(
        self,
        *,
        device_id: DeviceId,
        instance_id: str,
        runtime: ContainerRuntime,
        logs: LogSource | None,
        book: Callable[[], Snapshot],
        answer: Answer,
        done: Callable[[], None],
        timers: TimerPort,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        super().__init__()
        self._device = device_id
        self._instance = instance_id
        self._runtime = runtime
        self._logs = logs
        self._book = book
        self._answer = answer
        self._done = done
        self._timers = timers
        self._clock = clock
        self._now = now
        self._sessions: dict[str, _Session] = {}
        self._ticking = False
        self._due = 0.0  # when the tick told last was due

    def on_stop(self) -> None:
        for session in list(self._sessions.values()):
            session.reader.close()
        self._sessions.clear()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Asked):
            try:
                self._asked(message.request)
            except Exception:  # every failure is an answer, never the actor's death
                logger.exception("answering a %s request failed", message.request.kind)
                self._send_error(message.request, "unavailable", "the agent failed to answer")
            finally:
                self._done()
        elif isinstance(message, FollowTick):
            self._ticking = False
            try:
                self._tick()
            except Exception:
                logger.exception("a followed log failed")
            self._schedule()
        return None

    # -- requests --------------------------------------------------------------------

    def _asked(self, request: DeviceRequest) -> None:
        if request.kind == DESCRIBE:
            self._describe(request)
            return
        try:
            logs = decode_logs_request(request.data)
        except ContractError as exc:
            self._send_error(request, "bad-request", str(exc))
            return
        if logs.session is not None:
            self._renew(request, logs)
        else:
            self._start_logs(request.reply, logs, requester=request.requester)

    def _describe(self, request: DeviceRequest) -> None:
        try:
            decode_describe_request(request.data)
        except ContractError as exc:
            self._send_error(request, "bad-request", str(exc))
            return
        described = describe(
            device_id=self._device, instance_id=self._instance, book=self._book(),
            runtime=self._runtime, now=self._now,
        )  # fmt: skip
        self._answer(request.reply, encode_answer(described))

    def _start_logs(self, reply: str, request: LogsRequest, *, requester: str) -> None:
        if self._logs is None:
            self._send(reply, error_chunk(_error("unavailable", "this runtime keeps no logs"),
                                          device_id=self._device))  # fmt: skip
            return
        if request.follow and len(self._sessions) >= MAX_SESSIONS:
            self._send(reply, error_chunk(
                _error("busy", f"{MAX_SESSIONS} logs are followed on this device already; "
                       "try again later"), device_id=self._device))  # fmt: skip
            return
        target = resolve(request, device_id=self._device, runtime=self._runtime)
        if isinstance(target, OnDemandError):
            self._send(reply, error_chunk(target, device_id=self._device))
            return
        reader = self._logs.open_logs(
            target.container_id, tail=request.tail, follow=request.follow,
            max_lines=FOLLOW_BUFFER_LINES if request.follow else max(request.tail, 1),
        )  # fmt: skip
        if request.follow:
            ident = secrets.token_hex(8)
            session = _Session(ident=ident, request=request, target=target, reader=reader,
                               reply=reply, requester=requester, now=self._clock())  # fmt: skip
            self._sessions[ident] = session
            self._flush(session, ack=True)  # names the session at once
            self._schedule()
            return
        try:
            reader.wait_ended(TAIL_WAIT_S)
            lines, skipped = reader.drain()
            error = reader.error
        finally:
            reader.close()
        if error and not lines:
            self._send(reply, error_chunk(_error("unavailable", error), device_id=self._device))
            return
        for chunk in chunks(lines, device_id=self._device, request=request,
                            container=target.container, first_seq=0, skipped=skipped,
                            done=True):  # fmt: skip
            self._send(reply, chunk)

    def _renew(self, asked: DeviceRequest, request: LogsRequest) -> None:
        reply = asked.reply
        session = self._sessions.get(request.session or "")
        if (session is None or session.request.deployment != request.deployment
                or session.requester != asked.requester):  # fmt: skip
            self._send(reply, error_chunk(
                _error("ended", f"no followed log {request.session} on this device (over, or "
                       "never started): follow again"), device_id=self._device,
                session=request.session))  # fmt: skip
            return
        session.reply = reply
        session.sent_to_reply = 0
        session.deadline = self._clock() + FOLLOW_WINDOW_S
        self._flush(session, ack=True)

    # -- followed logs ---------------------------------------------------------------

    def _schedule(self) -> None:
        if self._sessions and not self._ticking:
            self._ticking = True
            self._due = self._clock() + TICK_S
            self._timers.tell_later(self.actor_ref, FollowTick(), delay=TICK_S)

    def _tick(self) -> None:
        now = self._clock()
        # A tick that comes late found this actor busy (a tail waits for podman up to
        # TAIL_WAIT_S): renewals may be waiting behind it in the mailbox, so the time it
        # was busy is not the requester's silence.
        stalled = max(0.0, now - self._due)
        for session in list(self._sessions.values()):
            session.deadline += stalled
            if now > session.deadline:
                self._end(session, f"not renewed within {FOLLOW_WINDOW_S:g}s")
            elif now - session.started > MAX_FOLLOW_S:
                self._end(session, f"followed for {MAX_FOLLOW_S:g}s: follow again to go on")
            elif session.reader.ended:
                self._end(session, session.reader.error or "the container stopped")
            else:
                self._flush(session, ack=False)

    def _flush(self, session: _Session, *, ack: bool) -> None:
        """Send what the reader buffered (an empty chunk too when ``ack``), keeping one
        message of the reply inbox's allowance for the session's last chunk."""
        room = MAX_REPLIES_PER_REQUEST - 1 - session.sent_to_reply
        if room <= 0:
            return  # the requester renews soon: the lines wait in the reader's buffer
        lines, skipped = session.reader.drain()
        if not lines and not skipped and not ack:
            return
        made = chunks(lines, device_id=self._device, request=session.request,
                      container=session.target.container, first_seq=session.seq,
                      skipped=skipped, session=session.ident)  # fmt: skip
        for chunk in made[:room]:
            self._send(session.reply, chunk)
            session.sent_to_reply += 1
            session.seq += 1

    def _end(self, session: _Session, why: str) -> None:
        self._sessions.pop(session.ident, None)
        session.reader.close()
        lines, skipped = session.reader.drain()
        made = chunks(lines, device_id=self._device, request=session.request,
                      container=session.target.container, first_seq=session.seq,
                      skipped=skipped, session=session.ident)  # fmt: skip
        room = MAX_REPLIES_PER_REQUEST - session.sent_to_reply - 1
        for chunk in made[: max(room, 0)]:
            if chunk.lines:
                self._send(session.reply, chunk)
                session.seq += 1
        last = error_chunk(_error("ended", why), device_id=self._device, seq=session.seq,
                           session=session.ident)  # fmt: skip
        self._send(session.reply, last)
        logger.info("followed log of %s/%s ended: %s", session.request.deployment,
                    session.target.container, why)  # fmt: skip

    # -- answers ---------------------------------------------------------------------

    def _send(self, reply: str, answer: LogsChunk | DeviceDescription) -> None:
        try:
            data = encode_answer(answer)
        except ContractError:  # chunks are made to fit; kept total regardless
            logger.exception("an answer did not fit its bound")
            return
        self._answer(reply, data)

    def _send_error(self, request: DeviceRequest, code: ErrorCode, message: str) -> None:
        error = _error(code, message)
        if request.kind == DESCRIBE:
            self._send(request.reply, DeviceDescription(device_id=self._device, at=self._now(),
                                                        error=error))  # fmt: skip
        else:
            self._send(request.reply, error_chunk(error, device_id=self._device))


def _error(code: ErrorCode, message: str) -> OnDemandError:
    return OnDemandError(code=code, message=message[:1000])


def refusal(
    *, device_id: DeviceId, kind: str, code: ErrorCode, message: str, now: dt.datetime
) -> bytes:
    """The answer to a request refused before it reached the responder (the gate)."""
    error = _error(code, message)
    if kind == DESCRIBE:
        return encode_answer(DeviceDescription(device_id=device_id, at=now, error=error))
    return encode_answer(error_chunk(error, device_id=device_id))
