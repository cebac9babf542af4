"""The device's last desired state on disk, so a reboot without network still runs it.

Why it exists: offline autonomy. The agent persists every desired-state entry it
received (the raw value as the operator wrote it, and its revision) under
``state_dir``; on start it reconciles from this file before NATS is reachable.

Writes are atomic: a temp file in the same directory, fsync, ``os.replace``, fsync of
the directory. A crash leaves either the old file or the new one, never half of one.

What it must never do: raise on a missing file (a first start), or lose the old file
when it cannot write the new one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

import msgspec

logger = logging.getLogger(__name__)

FILE_NAME = "desired-state.json"


class StoredEntry(msgspec.Struct, frozen=True, kw_only=True):
    revision: int
    value: bytes  # the desired-state value as received (base64 in the file)


class _File(msgspec.Struct, kw_only=True):
    version: int = 1
    entries: dict[str, StoredEntry] = msgspec.field(default_factory=dict)


class DesiredStore:
    """``state_dir/desired-state.json``: deployment name -> (revision, raw value)."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir
        self.path = state_dir / FILE_NAME

    def load(self) -> dict[str, StoredEntry]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            return dict(msgspec.json.decode(data, type=_File).entries)
        except msgspec.DecodeError as exc:
            # Never written half (atomic); a damaged file is a disk problem. Start
            # empty: NATS will tell us the truth once it is reachable.
            logger.error("ignoring unreadable %s: %s", self.path, exc)  # noqa: TRY400
            return {}

    def save(self, entries: dict[str, StoredEntry]) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        data = msgspec.json.encode(_File(entries=dict(sorted(entries.items()))))
        fd, tmp = tempfile.mkstemp(prefix=".desired-", dir=self._dir)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
