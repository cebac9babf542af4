"""The device's last desired state on disk, so a reboot without network still runs it.

Why it exists: offline autonomy. The agent persists every *valid* desired-state entry it
received (the raw value as the operator wrote it, and its revision) under ``state_dir``,
and every deletion it has not finished yet (the deployment and the revision of its
delete), so a crash in the middle of a removal is finished on the next start. On start
it reconciles from this file before NATS is reachable.

Writes are atomic: a temp file in the same directory, fsync, ``os.replace``, fsync of
the directory. A crash leaves either the old file or the new one, never half of one.

Reading is total and bounded: a file larger than :data:`MAX_FILE_BYTES`, nested deeper
than the wire allows, or that does not parse is renamed aside to
``desired-state.json.bad-<UTC timestamp>`` with a WARNING naming both paths, and the
agent starts empty (NATS tells it the truth once reachable). An entry whose deployment
name is invalid or whose value does not decode as a score is dropped with a warning of
its own; the others are kept. A value persisted once stopped every later start of an
agent (a boot loop that only deleting the file by hand ended): never again.

What it must never do: raise on any file content or a missing file (a first start), lose
the old file when it cannot write the new one, or delete a file it could not read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import tempfile
from pathlib import Path
from typing import Final

import msgspec

from fleet.contracts import DeploymentName, decode_score
from fleet.contracts.limits import MAX_INT, check_json_bounds
from fleet.errors import ContractError

logger = logging.getLogger(__name__)

FILE_NAME: Final = "desired-state.json"
MAX_FILE_BYTES: Final = 16 * 1024 * 1024
"""The largest file read back: ~190 scores at the wire's largest value, thousands of
typical ones. A larger file is set aside like a damaged one."""


class StoredEntry(msgspec.Struct, frozen=True, kw_only=True):
    revision: int
    value: bytes  # the desired-state value as received (base64 in the file)


class StoredDesired(msgspec.Struct, frozen=True, kw_only=True):
    """What the file holds: valid entries, and deletions not finished yet."""

    entries: dict[str, StoredEntry] = msgspec.field(default_factory=dict)
    removing: dict[str, int] = msgspec.field(default_factory=dict)  # deployment -> revision


class _File(msgspec.Struct, kw_only=True):
    version: int = 1
    entries: dict[str, msgspec.Raw] = msgspec.field(default_factory=dict)
    removing: dict[str, msgspec.Raw] = msgspec.field(default_factory=dict)


_FILE: Final = msgspec.json.Decoder(_File)
_ENTRY: Final = msgspec.json.Decoder(StoredEntry)
_REVISION: Final = msgspec.json.Decoder(int)


def _check_revision(revision: int) -> int:
    if not 0 <= revision <= MAX_INT:
        raise ContractError(f"revision {revision} is out of range")
    return revision


class DesiredStore:
    """``state_dir/desired-state.json``: deployment -> (revision, raw value), and deletions."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir
        self.path = state_dir / FILE_NAME

    def load(self) -> StoredDesired:
        """What was persisted, each entry checked; never raises (see the module doc)."""
        try:
            if self.path.stat().st_size > MAX_FILE_BYTES:
                self._set_aside(f"it is larger than {MAX_FILE_BYTES} bytes")
                return StoredDesired()
            data = self.path.read_bytes()
        except FileNotFoundError:
            return StoredDesired()
        except OSError as exc:
            logger.error("cannot read %s (%s); starting without it", self.path, exc)  # noqa: TRY400
            return StoredDesired()
        try:
            check_json_bounds(data, what=str(self.path), max_bytes=MAX_FILE_BYTES)
            parsed = _FILE.decode(data)
        except (ContractError, msgspec.MsgspecError) as exc:
            self._set_aside(str(exc))
            return StoredDesired()
        except Exception as exc:  # total: no content may stop the agent from starting
            self._set_aside(f"{type(exc).__name__}: {exc}")
            return StoredDesired()
        return StoredDesired(
            entries=self._entries(parsed.entries), removing=self._removing(parsed.removing)
        )

    def _entries(self, raw: dict[str, msgspec.Raw]) -> dict[str, StoredEntry]:
        entries = {}
        for name, item in raw.items():
            try:
                DeploymentName.try_new(name)
                entry = _ENTRY.decode(item)
                _check_revision(entry.revision)
                decode_score(entry.value)
            except (ContractError, msgspec.MsgspecError) as exc:
                logger.warning("%s: dropping the entry of %r: %s", self.path, name[:100], exc)
                continue
            entries[name] = entry
        return entries

    def _removing(self, raw: dict[str, msgspec.Raw]) -> dict[str, int]:
        removing = {}
        for name, item in raw.items():
            try:
                DeploymentName.try_new(name)
                revision = _check_revision(_REVISION.decode(item))
            except (ContractError, msgspec.MsgspecError) as exc:
                logger.warning("%s: dropping the deletion of %r: %s", self.path, name[:100], exc)
                continue
            removing[name] = revision
        return removing

    def _set_aside(self, reason: str) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = self.path.with_name(f"{FILE_NAME}.bad-{stamp}")
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            logger.error(  # noqa: TRY400 - the reason is the message
                "%s cannot be read (%s) nor renamed aside to %s (%s); starting without it",
                self.path,
                reason[:500],
                aside,
                exc,
            )
            return
        logger.warning(
            "%s cannot be read (%s); set it aside as %s and starting without it: the "
            "desired state comes from NATS once it is reachable",
            self.path,
            reason[:500],
            aside,
        )

    def save(self, desired: StoredDesired) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        data = msgspec.json.encode(
            {
                "version": 1,
                "entries": dict(sorted(desired.entries.items())),
                "removing": dict(sorted(desired.removing.items())),
            }
        )
        if len(data) > MAX_FILE_BYTES:
            logger.warning(
                "%s will be %d bytes, more than the %d read back at start: an offline "
                "boot would start without it",
                self.path,
                len(data),
                MAX_FILE_BYTES,
            )
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
