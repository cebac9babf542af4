"""The message the lean NATS client delivers, and the reading of its headers.

Why it exists: :mod:`fleet.runtime.nats` reads ``subject``, ``reply``, ``data`` and
``headers`` (a mapping with ``Status``/``Description`` filled from an inline status line,
as nats-py does) of :class:`fleet.runtime.nats.transport.Message`. The lean client
(:mod:`loadtest.natsproto`) builds that very type from what it parses, so the runtime
reads its messages exactly as it reads nats-py's.

What it must never do: grow into a second nats-py (no ack/nak, no respond helpers):
the lean client is for simulated devices only.
"""

from __future__ import annotations

from fleet.runtime.nats.transport import Message

__all__ = ["Msg", "parse_headers"]

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


Msg = Message
"""What the lean client delivers: fleet's own transport message, so that nothing is
converted between the client and :mod:`fleet.runtime.nats`."""
