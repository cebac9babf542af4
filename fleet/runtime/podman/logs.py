"""A container's last log lines, as podman's logs endpoint sends them, made safe to report.

Why it exists: a crash-looping container is reported with its last few lines of output,
and those lines end up in a ``device-state`` report that people read and other programs
decode. podman sends a container's output (without a TTY) as frames: one header of
8 bytes (stream 0/1/2, three zero bytes, the payload size as a big-endian uint32), then
the payload; with a TTY it sends the raw bytes. Either way the bytes are whatever the
container wrote: any encoding, control characters, megabytes on one line.

What it must never do: raise on any input, or return a line longer than
:data:`MAX_LINE_CHARS` or holding a control character.
"""

from __future__ import annotations

import re
import struct
from typing import Final

MAX_LINE_CHARS: Final = 200
"""A reported log line is cut to this many characters."""

_HEADER: Final = struct.Struct(">B3xI")
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _payloads(data: bytes) -> bytes:
    """The frames' payloads joined, or ``data`` itself when it is not framed."""
    out, offset = [], 0
    while offset + _HEADER.size <= len(data):
        stream, size = _HEADER.unpack_from(data, offset)
        if stream > 2 or data[offset + 1 : offset + 4] != b"\0\0\0":
            return data  # not framed (a TTY container): raw output
        out.append(data[offset + _HEADER.size : offset + _HEADER.size + size])
        offset += _HEADER.size + size
    if offset != len(data):
        return data
    return b"".join(out)


def clean_line(line: str) -> str:
    """One line fit for a report: no control characters, at most MAX_LINE_CHARS."""
    text = _CONTROL.sub("?", line.replace("\t", " ")).strip()
    if len(text) > MAX_LINE_CHARS:
        text = text[: MAX_LINE_CHARS - 1] + "\u2026"
    return text


def read_log_lines(data: bytes, *, tail: int) -> list[str]:
    """The last ``tail`` non-empty lines of podman's logs response body ``data``."""
    text = _payloads(data).decode("utf-8", errors="replace")
    lines = [clean_line(line) for line in text.splitlines()]
    return [line for line in lines if line][-tail:] if tail > 0 else []
