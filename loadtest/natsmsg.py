"""The message the lean NATS client delivers: shaped like nats-py's ``Msg`` where fleet reads it.

Why it exists: :mod:`fleet.runtime.nats.desired_feed` and :mod:`fleet.runtime.nats.desired_snapshot`
read ``msg.subject``, ``msg.reply``, ``msg.data`` and ``msg.headers`` (a dict with
``Status``/``Description`` filled from an inline status line, as nats-py does); the
revision of a JetStream delivery they take from ``msg.reply`` with
:func:`fleet.runtime.nats.kv.stream_sequence`. :class:`Msg` gives exactly those, so the same
code runs over nats-py and over :mod:`loadtest.natsproto`.

What it must never do: grow into a second nats-py (no ack/nak, no respond helpers):
the lean client is for simulated devices only.
"""

from __future__ import annotations

_STATUS_LINE = b"NATS/1.0"


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


class Msg:
    """One delivered message: ``subject``, ``reply`` ('' when none), ``data``, ``headers``."""

    __slots__ = ("data", "headers", "reply", "subject")

    def __init__(
        self, *, subject: str, reply: str, data: bytes, headers: dict[str, str] | None
    ) -> None:
        self.subject = subject
        self.reply = reply
        self.data = data
        self.headers = headers

    @property
    def header(self) -> dict[str, str] | None:
        return self.headers

    def __repr__(self) -> str:
        return (
            f"Msg(subject={self.subject!r}, reply={self.reply!r}, "
            f"data={self.data[:32]!r}{'...' if len(self.data) > 32 else ''}, "
            f"headers={self.headers!r})"
        )
