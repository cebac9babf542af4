"""The JetStream API requests fleet makes, and the reading of their answers, over a transport.

Why it exists: streams are created, inspected and updated, consumers created and deleted,
and KV writes acknowledged by JSON answers on request subjects. nats-py does this behind
its JetStream objects; fleet does it here, over any
:class:`~fleet.runtime.nats.transport.Transport`, and turns every answer into a value or
one of fleet's errors: a lost compare-and-swap (``err_code`` 10071) is
:class:`~fleet.errors.RevisionMismatch`, a server that cannot serve now (503, a status
reply without body) :class:`~fleet.errors.BusUnavailable`, any other refusal
:class:`ApiRefused` (a :class:`~fleet.errors.BusError` with the codes), and bytes that
are not an answer :class:`~fleet.runtime.nats.transport.MalformedReply`.

What it must never do: build a subject (:mod:`fleet.runtime.nats.subjects` does), or
let a decoding error other than fleet's out.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fleet.errors import BusError, BusUnavailable, FleetError, RevisionMismatch
from fleet.runtime.nats import subjects
from fleet.runtime.nats.transport import MalformedReply, Message, Transport

WRONG_LAST_SEQUENCE = 10071  # err_code of a lost compare-and-swap
STREAM_NOT_FOUND = 10059


class ApiRefused(BusError):
    """JetStream refused a request; :attr:`code` and :attr:`err_code` say how."""

    def __init__(self, message: str, *, code: int, err_code: int) -> None:
        super().__init__(message)
        self.code = code
        self.err_code = err_code


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _Answer(msgspec.Struct):
    error: _ApiError | None = None


class _PubAck(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    error: _ApiError | None = None


_decode_answer = msgspec.json.Decoder(_Answer).decode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode
_decode_ack = msgspec.json.Decoder(_PubAck).decode


def refusal(what: str, error: _ApiError) -> FleetError:
    """fleet's error for a JetStream error answer to ``what``."""
    if error.err_code == WRONG_LAST_SEQUENCE:
        return RevisionMismatch(f"{what}: the key is no longer at that revision")
    text = f"{what}: {error.description} (code {error.code}, err_code {error.err_code})"
    if error.code == 503:
        return BusUnavailable(text)
    return ApiRefused(text, code=error.code, err_code=error.err_code)


def status_error(what: str, reply: Message) -> FleetError | None:
    """The error a status reply without body stands for (None: it is not one)."""
    if reply.data or not reply.headers:
        return None
    status = reply.headers.get(subjects.STATUS)
    if status is None:
        return None
    text = f"{what}: {status} {reply.headers.get(subjects.DESCRIPTION, '')}".rstrip()
    if status in (subjects.STATUS_NO_RESPONDERS, subjects.STATUS_TIMEOUT):
        return BusUnavailable(text)
    return BusError(text)


def acknowledged(what: str, reply: Message) -> int:
    """The revision in a KV write's acknowledgement (a PubAck), or fleet's error."""
    status = status_error(what, reply)
    if status is not None:
        raise status
    try:
        ack = _decode_ack(reply.data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedReply(f"{what}: unreadable acknowledgement {reply.data[:200]!r}") from exc
    if ack.error is not None:
        raise refusal(what, ack.error)
    if ack.seq <= 0:
        raise MalformedReply(f"{what}: acknowledgement without a sequence {reply.data[:200]!r}")
    return ack.seq


def acked_revision(data: bytes) -> int:
    """The revision of a well-formed, positive acknowledgement; 0 for anything else
    (then :func:`acknowledged` says what it is). The fast path of batched writes."""
    try:
        ack = _decode_ack(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return 0
    return ack.seq if ack.error is None and ack.seq > 0 else 0


def answer_of(what: str, reply: Message) -> dict[str, Any]:
    """A JetStream API answer as a JSON object, or fleet's error for an error answer."""
    status = status_error(what, reply)
    if status is not None:
        raise status
    try:
        answer = _decode_object(reply.data)
        error = _decode_answer(reply.data).error
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedReply(
            f"{what}: answer is not a JetStream one: {reply.data[:200]!r}"
        ) from exc
    if error is not None:
        raise refusal(what, error)
    return answer


async def call(
    transport: Transport, subject: str, body: bytes, *, what: str, timeout: float
) -> dict[str, Any]:
    """Send one JetStream API request; its answer (:func:`answer_of`)."""
    reply = await transport.request(subject, body, timeout=timeout)
    return answer_of(what, reply)


def encode(request: dict[str, Any]) -> bytes:
    return msgspec.json.encode(request)


def field(answer: dict[str, Any], *path: str, what: str) -> Any:
    """``answer[path[0]][path[1]]...``; :class:`MalformedReply` if a step is missing."""
    value: Any = answer
    for step in path:
        if not isinstance(value, dict) or step not in value:
            raise MalformedReply(f"{what}: answer without {'.'.join(path)}")
        value = value[step]
    return value
