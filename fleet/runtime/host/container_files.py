"""A container's files on the device: opened, written whole, mounted read-only.

Why it exists: a score's ``files`` (docs/workloads.md "Files") become real files the
container sees at their paths. For each container the agent writes them under
``<root>/<deployment>/<container>/<digest>/``, where ``digest`` hashes every file's path,
mode and *content* (a sealed one's plaintext, so sealing the same bytes again changes
nothing): the directory is the container's files at one content, and the digest goes
into the container's spec hash, so a change of one file's content replaces only the
containers that mount it.

Written whole or not at all: into ``<digest>.tmp-<pid>``, each file fsynced, then the
directory renamed into place and its parent fsynced. A crash (SIGKILL mid-write) leaves
a ``.tmp-`` directory that is never mounted and is removed on the next pass; a
``<digest>`` directory that exists is complete. Sealed (Secret) content is written 0600
(or the mode asked, if narrower), owned by the container's numeric user when it has one,
in directories only root can enter; other files get the mode asked.

Sealed values are opened with the device's seed (``identity.seed`` in the state dir,
read when first needed): a value that does not open is :class:`FilesFailed` naming the
field, and nothing of the deployment runs.

What it must never do: log or put in an error a file's content or a seed; mount a
directory it did not finish writing; follow a path out of its root.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import msgspec

from fleet.contracts import FileSpec, SealedValue
from fleet.errors import PermanentError
from fleet.runtime.sealing import Opener, SealError

SEED_FILE: Final = "identity.seed"
_MAX_SEED_BYTES: Final = 4096
_TMP: Final = ".tmp-"


class FilesFailed(PermanentError):
    """A file that cannot be given to its container; :attr:`field` names it."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class BindMount(msgspec.Struct, frozen=True, kw_only=True):
    """A file on the device mounted read-only at ``target`` in the container."""

    source: str
    target: str


class Prepared(msgspec.Struct, frozen=True, kw_only=True):
    digest: str
    mounts: tuple[BindMount, ...]


class ContainerFiles:
    """The files of every container of one device, under ``root``."""

    def __init__(self, root: Path, *, seed_path: Path | None = None) -> None:
        self.root = root
        self._seed_path = seed_path
        self._opener: Opener | None = None

    @property
    def state_dir(self) -> Path:
        """The agent's state dir (it holds the seed): never a host path to mount."""
        return self._seed_path.parent if self._seed_path is not None else self.root.parent

    def _open(self, file: FileSpec, field: str) -> bytes:
        if file.content is not None:
            return file.content.encode()
        if file.sealed is None:  # a reference: the operator resolves those
            raise FilesFailed(
                f"{field}.{file.reference} is a reference the operator resolves; the "
                "desired state must carry the file's content or its sealed value",
                field=f"{field}.{file.reference}",
            )
        try:
            return self._device_opener().open(file.sealed)
        except SealError as exc:
            raise FilesFailed(f"{field}.sealed: {exc}", field=f"{field}.sealed") from None

    def _device_opener(self) -> Opener:
        if self._opener is None:
            path = self._seed_path
            if path is None:
                raise SealError("this agent has no device key to open sealed values with")
            try:
                with path.open("rb") as handle:
                    seed = handle.read(_MAX_SEED_BYTES).decode("ascii", "replace").strip()
            except OSError as exc:
                raise SealError(
                    f"this device's key {path} cannot be read ({exc.strerror}): sealed "
                    "values cannot be opened"
                ) from None
            self._opener = Opener(seed)
        return self._opener

    def open_sealed(self, value: SealedValue, *, field: str) -> bytes:
        """A sealed value (a registry credential) opened; :class:`FilesFailed` naming it."""
        try:
            return self._device_opener().open(value)
        except SealError as exc:
            raise FilesFailed(f"{field}: {exc}", field=field) from None

    def contents(self, files: Sequence[FileSpec], *, field: str) -> list[bytes]:
        """Each file's content (sealed ones opened); :class:`FilesFailed` naming the field."""
        return [self._open(f, f"{field}[{i}]") for i, f in enumerate(files)]

    def prepare(
        self, *, deployment: str, container: str, files: Sequence[FileSpec], field: str
    ) -> Prepared:
        """Write the container's files (if not written yet) and say how to mount them."""
        contents = self.contents(files, field=field)
        digest = files_digest(files, contents)
        base = self.root / deployment / container
        final = base / digest
        if not final.is_dir():
            self._write(base, final, files, contents)
        mounts = tuple(
            BindMount(source=str(final / str(i)), target=f.path) for i, f in enumerate(files)
        )
        return Prepared(digest=digest, mounts=mounts)

    def _write(
        self, base: Path, final: Path, files: Sequence[FileSpec], contents: list[bytes]
    ) -> None:
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(base, 0o711)  # the container user passes through
        staging = base / f"{final.name}{_TMP}{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o711)
        for index, (file, content) in enumerate(zip(files, contents, strict=True)):
            secret = file.sealed is not None
            # The host copy is bind-mounted read-only: never setuid/setgid/sticky or
            # group/other-writable there, whatever mode the score asks.
            mode = file.file_mode & (0o600 if secret else 0o755)
            path = staging / str(index)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                _write_all(fd, content)
                os.fchmod(fd, mode)
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync(staging)
        os.rename(staging, final)  # atomic: complete or absent
        _fsync(base)

    def owner(self, prepared: Prepared, *, uid: int | None) -> None:
        """Give the files to the container's numeric user (root's by default)."""
        if uid is None:
            return
        for mount in prepared.mounts:
            with contextlib.suppress(OSError, OverflowError):
                os.chown(mount.source, uid, -1)

    def forget(self, *, deployment: str, keep: dict[str, str]) -> None:
        """Remove the deployment's file directories but ``keep`` (container -> digest),
        and every unfinished one."""
        top = self.root / deployment
        if not top.is_dir():
            return
        for container_dir in top.iterdir():
            wanted = keep.get(container_dir.name)
            for written in container_dir.iterdir() if container_dir.is_dir() else ():
                if written.name != wanted:
                    shutil.rmtree(written, ignore_errors=True)
            if wanted is None:
                shutil.rmtree(container_dir, ignore_errors=True)
        if not keep:
            shutil.rmtree(top, ignore_errors=True)


def device_files(state_dir: Path) -> ContainerFiles:
    """The agent's files: under ``state_dir/files``, opened with ``state_dir/identity.seed``."""
    return ContainerFiles(state_dir / "files", seed_path=state_dir / SEED_FILE)


def files_digest(files: Sequence[FileSpec], contents: Sequence[bytes]) -> str:
    """What the container's files are: each path, mode and content's hash (not how the
    content travelled: a value sealed twice is the same file)."""
    digest = hashlib.sha256()
    for file, content in zip(files, contents, strict=True):
        digest.update(file.path.encode() + b"\0" + str(file.file_mode).encode() + b"\0")
        digest.update(hashlib.sha256(content).digest())
        digest.update(b"\0s" if file.sealed is not None else b"\0c")
    return digest.hexdigest()[:16]


def _fsync(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, content: bytes) -> None:
    """Write all of ``content`` (os.write may write less than asked)."""
    view = memoryview(content)
    while view:
        written = os.write(fd, view)
        view = view[written:]
