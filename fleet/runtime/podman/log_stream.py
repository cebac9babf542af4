"""A container's output as podman streams it, read on a thread of its own, bounded.

Why it exists: ``fleetctl logs [-f]`` reads a container's last lines, and with ``-f``
what it prints next, for as long as someone follows (docs/agent.md, "Logs and
describe on demand"). podman's ``/containers/{id}/logs`` sends the tail, and with
``follow`` keeps the response open and sends each line as it is written. A
:class:`PodmanLogFollower` reads that response on its own thread into a bounded buffer
of clean lines (:func:`~fleet.contracts.ondemand.clean_log_line`); the agent drains the
buffer when it wants. A container printing faster than it is drained loses its oldest
buffered lines, counted in ``skipped``, never the reader's memory. Closing shuts the
socket down (as :mod:`fleet.runtime.podman.events` does), so a quiet stream stops at once.

The bytes are whatever the container wrote: frames (8-byte header, then the payload)
without a TTY, raw bytes with one; :class:`LineSplitter` takes them in pieces of any
size and never holds more than a few line lengths of a line without its end.

What it must never do: raise on any bytes, hold more than ``max_lines`` lines or one
partial line longer than :data:`MAX_PARTIAL_BYTES`, or outlive :meth:`close` by more
than a moment.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import struct
import threading
from typing import Any, Final

from fleet.contracts.ondemand import MAX_LOG_LINE_CHARS, clean_log_line
from fleet.runtime.podman.events import abort_stream

logger = logging.getLogger(__name__)

MAX_PARTIAL_BYTES: Final = 4 * MAX_LOG_LINE_CHARS
"""Bytes of one line kept before its end arrives; the rest of it is dropped (the line is
cut at :data:`~fleet.contracts.ondemand.MAX_LOG_LINE_CHARS` anyway)."""
MAX_TAIL_READ_BYTES: Final = 16 * 1024 * 1024
"""Bytes read for a tail without ``follow`` (a thousand huge lines): then it stops."""

_HEADER: Final = struct.Struct(">B3xI")


class LineSplitter:
    """Bytes of podman's logs body, in pieces of any size, into clean lines."""

    def __init__(self) -> None:
        self._framed: bool | None = None  # decided by the first 8 bytes
        self._head = b""  # a frame header not yet whole
        self._frame_left = 0  # payload bytes of the current frame still to come
        self._partial = bytearray()  # a line without its end yet
        self._cut = False  # the partial line was too long: drop the rest of it

    def feed(self, data: bytes) -> list[str]:
        if self._framed is None:
            self._head += data
            if len(self._head) < _HEADER.size:
                return []
            data, self._head = self._head, b""
            self._framed = data[0] <= 2 and data[1:4] == b"\0\0\0"
        if not self._framed:
            return self._text(data)
        lines: list[str] = []
        while data:
            if self._frame_left == 0:
                need = _HEADER.size - len(self._head)
                self._head += data[:need]
                data = data[need:]
                if len(self._head) < _HEADER.size:
                    break
                _stream, self._frame_left = _HEADER.unpack(self._head)
                self._head = b""
                continue
            payload, data = data[: self._frame_left], data[self._frame_left :]
            self._frame_left -= len(payload)
            lines += self._text(payload)
        return lines

    def flush(self) -> list[str]:
        """The last line, if the stream ended without its newline."""
        if not self._partial:
            return []
        line = self._line(bytes(self._partial))
        self._partial.clear()
        return [line] if line else []

    def _text(self, data: bytes) -> list[str]:
        lines = []
        *whole, rest = data.split(b"\n")
        for piece in whole:
            if not self._cut:
                self._partial += piece[: MAX_PARTIAL_BYTES - len(self._partial)]
            line = self._line(bytes(self._partial))
            self._partial.clear()
            self._cut = False
            if line:
                lines.append(line)
        if not self._cut:
            self._partial += rest[: MAX_PARTIAL_BYTES - len(self._partial)]
            self._cut = len(self._partial) >= MAX_PARTIAL_BYTES
        return lines

    @staticmethod
    def _line(raw: bytes) -> str:
        return clean_log_line(raw.decode("utf-8", errors="replace").rstrip("\r"))


class PodmanLogFollower:
    """One read of a container's logs (``follow``: until closed or the container stops)."""

    def __init__(self, *, client: Any, path: str, tail: int, follow: bool, max_lines: int) -> None:
        self._client = client
        self._params = {"stdout": True, "stderr": True, "tail": int(tail), "follow": follow}
        self._path = path
        self._follow = follow
        self._lines: collections.deque[str] = collections.deque(maxlen=max(1, max_lines))
        self._skipped = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._ended = threading.Event()
        self._response: Any = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="podman-logs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def ended(self) -> bool:
        """The stream is over (its end read, an error, or closed); what is buffered stays."""
        return self._ended.is_set()

    def wait_ended(self, timeout: float) -> bool:
        return self._ended.wait(timeout)

    def drain(self) -> tuple[list[str], int]:
        """The lines buffered since the last drain, and how many were dropped before them."""
        with self._lock:
            lines, skipped = list(self._lines), self._skipped
            self._lines.clear()
            self._skipped = 0
        return lines, skipped

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            response = self._response
        abort_stream(response)
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join(5)
        with contextlib.suppress(Exception):
            self._client.close()

    def _keep(self, lines: list[str]) -> None:
        if not lines:
            return
        with self._lock:
            room = self._lines.maxlen or 1
            over = len(self._lines) + len(lines) - room
            if over > 0:
                self._skipped += over
            self._lines.extend(lines)

    def _run(self) -> None:
        try:
            self._read()
        except Exception as exc:
            if not self._closed.is_set():
                self.error = f"reading the container's output failed: {exc}"[:500]
                logger.info("podman logs %s: %r", self._path, exc)
        finally:
            with self._lock:
                response = self._response
            if response is not None:
                with contextlib.suppress(Exception):
                    response.close()
            self._ended.set()

    def _read(self) -> None:
        response = self._client.api.get(
            self._path, params=self._params, stream=True, timeout=None if self._follow else 30
        )
        with self._lock:
            self._response = response
        if response.status_code == 404:
            self.error = "the container is gone"
            return
        if not response.ok:
            self.error = f"podman answered HTTP {response.status_code}"
            return
        splitter = LineSplitter()
        read = 0
        for data in response.iter_content(chunk_size=None):
            if self._closed.is_set():
                return
            self._keep(splitter.feed(data))
            read += len(data)
            if not self._follow and read > MAX_TAIL_READ_BYTES:
                self.error = f"more than {MAX_TAIL_READ_BYTES} bytes of output: cut"
                return
        self._keep(splitter.flush())
