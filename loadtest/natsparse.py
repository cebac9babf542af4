"""The NATS server-to-client protocol parser of the lean client (:mod:`loadtest.natsproto`).

Why it exists: the client reads with ``asyncio.Protocol.data_received``, which hands
over the byte stream cut anywhere: a message split across reads, thousands in one read,
a 1 MB payload in dozens of pieces. :class:`Parser` keeps what it has not consumed and
calls its :class:`Sink` once per complete operation (``INFO``, ``MSG``, ``HMSG``,
``PING``, ``PONG``, ``+OK``, ``-ERR``), whatever the split. It is separate from the
connection so tests can feed it a recorded stream byte by byte.

What it must never do: guess. A line it does not understand, or a payload not followed
by CRLF, raises :class:`ProtocolError`; the connection then closes.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

#: A control line longer than this without CRLF is garbage (nats-server's own limit is 4 KiB).
MAX_CONTROL_LINE = 64 * 1024


class ProtocolError(Exception):
    """The server sent bytes that are not the NATS protocol."""


class Sink(Protocol):
    """What the parser calls; the connection implements it."""

    def on_msg(
        self, subject: bytes, sid: int, reply: bytes, header: bytes | None, payload: bytes
    ) -> None: ...

    def on_info(self, info: dict[str, Any]) -> None: ...

    def on_ping(self) -> None: ...

    def on_pong(self) -> None: ...

    def on_err(self, message: str) -> None: ...


class Parser:
    """Feed it bytes as they come; it calls ``sink`` for every complete operation."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._buf = bytearray()
        # While a MSG/HMSG's payload is incomplete: its line's fields and sizes.
        self._subject = b""
        self._sid = 0
        self._reply = b""
        self._hdr_len = -1  # -1: no header (MSG)
        self._need = -1  # payload bytes the pending message needs; -1: none pending

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed (tests, diagnostics)."""
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        size = len(buf)
        sink = self._sink
        try:
            while pos < size:
                need = self._need
                if need >= 0:
                    end = pos + need
                    if size < end + 2:
                        return
                    if buf[end : end + 2] != b"\r\n":
                        raise ProtocolError(
                            f"payload of {self._subject!r} ({need} bytes) not followed by CRLF"
                        )
                    hdr = self._hdr_len
                    if hdr < 0:
                        sink.on_msg(
                            self._subject, self._sid, self._reply, None, bytes(buf[pos:end])
                        )
                    else:
                        split = pos + hdr
                        sink.on_msg(
                            self._subject,
                            self._sid,
                            self._reply,
                            bytes(buf[pos:split]),
                            bytes(buf[split:end]),
                        )
                    pos = end + 2
                    self._need = -1
                    continue
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if size - pos > MAX_CONTROL_LINE:
                        raise ProtocolError(
                            f"no CRLF in {size - pos} bytes: {bytes(buf[pos : pos + 80])!r}..."
                        )
                    return
                line = bytes(buf[pos:eol])
                pos = eol + 2
                self._control(line)
        finally:
            del buf[:pos]

    def _control(self, line: bytes) -> None:
        op = line[:4].upper()
        if op == b"MSG ":
            self._start_msg(line, with_header=False)
        elif op == b"HMSG":
            self._start_msg(line, with_header=True)
        elif op == b"PING":
            self._sink.on_ping()
        elif op == b"PONG":
            self._sink.on_pong()
        elif op == b"+OK":
            pass
        elif op == b"-ERR":
            self._sink.on_err(line[4:].strip().strip(b"'").decode(errors="replace"))
        elif op == b"INFO":
            try:
                info = json.loads(line[4:])
            except ValueError as exc:
                raise ProtocolError(f"malformed INFO {line[:200]!r}: {exc}") from exc
            if not isinstance(info, dict):
                raise ProtocolError(f"INFO is not a JSON object: {line[:200]!r}")
            self._sink.on_info(info)
        else:
            raise ProtocolError(f"unknown operation {line[:80]!r}")

    def _start_msg(self, line: bytes, *, with_header: bool) -> None:
        # MSG <subject> <sid> [reply] <size> / HMSG <subject> <sid> [reply] <hdr size> <size>
        parts = line.split()
        fixed = 5 if with_header else 4
        try:
            if len(parts) == fixed:
                reply = b""
            elif len(parts) == fixed + 1:
                reply = parts[3]
            else:
                raise ProtocolError(f"malformed message line {line[:200]!r}")
            self._subject = parts[1]
            self._sid = int(parts[2])
            total = int(parts[-1])
            header = int(parts[-2]) if with_header else -1
        except ValueError as exc:
            raise ProtocolError(f"malformed message line {line[:200]!r}: {exc}") from exc
        if total < 0 or header > total:
            raise ProtocolError(f"impossible sizes in message line {line[:200]!r}")
        self._reply = reply
        self._hdr_len = header
        self._need = total
