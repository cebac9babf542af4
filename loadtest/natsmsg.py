"""The message the lean NATS client delivers: shaped like nats-py's ``Msg`` where fleet reads it.

Why it exists: :mod:`fleet.runtime.desired_feed` and :mod:`fleet.runtime.desired_snapshot`
read ``msg.subject``, ``msg.reply``, ``msg.data``, ``msg.headers`` (a dict with
``Status``/``Description`` filled from an inline status line, as nats-py does) and
``msg.metadata.sequence.stream`` (parsed from a JetStream ``$JS.ACK...`` reply subject).
:class:`Msg` gives exactly those, so the same code runs over nats-py and over
:mod:`loadtest.natsproto`.

What it must never do: grow into a second nats-py (no ack/nak, no respond helpers):
the lean client is for simulated devices only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

_STATUS_LINE = b"NATS/1.0"

# $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
_V1_TOKENS = 9
# $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>
#   .<pending>[.<random token>]
_V2_TOKENS = 12


def parse_headers(raw: bytes) -> dict[str, str] | None:
    """Headers of an HMSG (``NATS/1.0[ status[ description]]\\r\\nKey: value\\r\\n...``).

    As nats-py: an inline status fills ``Status`` (only when it is a number) and
    ``Description``; names and values are stripped; a line without ``:`` is skipped;
    no header at all gives None.
    """
    lines = raw.split(b"\r\n")
    headers: dict[str, str] = {}
    first = lines[0]
    if first.startswith(_STATUS_LINE) and len(first) > len(_STATUS_LINE):
        status, _, description = first[len(_STATUS_LINE) :].strip().partition(b" ")
        if status.isdigit():
            headers["Status"] = status.decode()
        description = description.strip()
        if description:
            headers["Description"] = description.decode(errors="replace")
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        try:
            key = name.strip().decode("ascii")
        except UnicodeDecodeError:
            continue
        if not key or any(c.isspace() for c in key):
            continue
        headers[key] = value.strip().decode(errors="replace")
    return headers or None


@dataclass(frozen=True, slots=True)
class SequencePair:
    consumer: int
    stream: int


@dataclass(frozen=True, slots=True)
class Metadata:
    """What a JetStream delivery's reply subject says (nats-py's ``Msg.Metadata``)."""

    sequence: SequencePair
    num_pending: int
    num_delivered: int
    timestamp: dt.datetime
    stream: str
    consumer: str
    domain: str | None = None


def parse_metadata(reply: str | None) -> Metadata:
    """Parse ``$JS.ACK...`` in its 9-token form and its newer 11/12-token form."""
    tokens = (reply or "").split(".")
    if len(tokens) < 2 or tokens[0] != "$JS" or tokens[1] != "ACK":
        raise ValueError(f"not a JetStream message: reply subject {reply!r}")
    if len(tokens) == _V1_TOKENS:
        stream, consumer, delivered, sseq, cseq, ts, pending = tokens[2:9]
        domain: str | None = None
    elif len(tokens) in (_V2_TOKENS - 1, _V2_TOKENS):
        domain = "" if tokens[2] == "_" else tokens[2]
        stream, consumer, delivered, sseq, cseq, ts, pending = tokens[4:11]
    else:
        raise ValueError(
            f"not a JetStream message: reply subject {reply!r} has {len(tokens)} tokens"
        )
    try:
        return Metadata(
            sequence=SequencePair(consumer=int(cseq), stream=int(sseq)),
            num_pending=int(pending),
            num_delivered=int(delivered),
            timestamp=dt.datetime.fromtimestamp(int(ts) / 1_000_000_000.0, dt.UTC),
            stream=stream,
            consumer=consumer,
            domain=domain,
        )
    except ValueError as exc:
        raise ValueError(f"malformed JetStream reply subject {reply!r}: {exc}") from exc


class Msg:
    """One delivered message: ``subject``, ``reply`` ('' when none), ``data``, ``headers``."""

    __slots__ = ("_metadata", "data", "headers", "reply", "subject")

    def __init__(
        self, *, subject: str, reply: str, data: bytes, headers: dict[str, str] | None
    ) -> None:
        self.subject = subject
        self.reply = reply
        self.data = data
        self.headers = headers
        self._metadata: Metadata | None = None

    @property
    def header(self) -> dict[str, str] | None:
        return self.headers

    @property
    def metadata(self) -> Metadata:
        """JetStream metadata from the reply subject; ValueError if it is not one."""
        if self._metadata is None:
            self._metadata = parse_metadata(self.reply)
        return self._metadata

    def __repr__(self) -> str:
        return (
            f"Msg(subject={self.subject!r}, reply={self.reply!r}, "
            f"data={self.data[:32]!r}{'...' if len(self.data) > 32 else ''}, "
            f"headers={self.headers!r})"
        )
