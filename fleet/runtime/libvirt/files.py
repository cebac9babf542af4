"""The kvm runtime's files: an artifact cache, and each domain's overlay and seed.

Why it exists: a virtual machine boots from files the device must fetch (``http``,
``https``, bounded in size and time) or copy from a local absolute path, check against
their ``sha256`` when the score gives one, and keep: ``<dir>/artifacts/`` holds each
artifact once (by its checksum when given, else by its URL), ``<dir>/domains/<name>/``
holds a domain's copy-on-write qcow2 overlay over a cached disk (``qemu-img``), its
cloud-init NoCloud seed (an ISO 9660 image labelled ``cidata``, by ``genisoimage``) and
its serial console log. A download goes to a ``.part`` file renamed into place once
checked, so a crash mid-fetch leaves no artifact that looks whole.

The system libvirtd runs qemu as its own user: everything here is world-readable and
its folders world-traversable (the overlay is handed to that user by libvirt itself).

Local paths come only from ``artifact_dirs`` (``[kvm] artifact_dirs``, none by default):
a score naming ``<state_dir>/identity.seed`` as its disk must not get the device's secret
copied into a world-readable cache. A disk is kept only if ``qemu-img info`` names no
backing file. After a domain's folder goes, artifacts no domain lists in its
``uses.json`` (and not fetched or looked up for an hour) are removed, a few at a time.

What it must never do: use an artifact whose checksum did not match, follow a URL
scheme (or a redirect) other than http(s), read more than ``max_bytes`` of one artifact,
read a local path outside ``artifact_dirs`` or anything but a regular file there, or
keep a disk image that names a backing file.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO, Final

from .port import ArtifactFailed

CHUNK: Final = 1 << 20
DEFAULT_MAX_BYTES: Final = 16 << 30  # 16 GiB: a disk image, not a runaway download
FETCH_TIMEOUT: Final = 30.0  # per socket operation
FETCH_DEADLINE: Final = 3600.0  # a whole download
SWEEP_LIMIT: Final = 64  # artifacts removed by one sweep, at most
SWEEP_MIN_AGE_S: Final = 3600.0  # an artifact fetched or looked up this recently stays
USES: Final = "uses.json"  # in a domain's folder: the artifacts it boots from
TOOL_TIMEOUT: Final = 120.0


def _tool(*args: str) -> str:
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
        )
    except FileNotFoundError as exc:
        raise OSError(f"{args[0]} is not installed (scripts/system-deps)") from exc
    except subprocess.TimeoutExpired as exc:
        raise OSError(f"{args[0]} took more than {TOOL_TIMEOUT:.0f}s") from exc
    if done.returncode != 0:
        raise OSError(f"{args[0]} failed: {done.stderr.strip()[-300:]}")
    return done.stdout


_FORMATS: Final = frozenset({"raw", "qcow2"})


def _image_info(path: Path, *, fmt: str | None) -> dict[str, Any]:
    """``qemu-img info`` of ``path`` (as ``fmt`` when given), never following a backing chain."""
    args = ["qemu-img", "info", "--output=json"]
    if fmt is not None:
        args += ["-f", fmt]
    try:
        info = json.loads(_tool(*args, str(path)))
    except ValueError as exc:
        raise OSError(f"qemu-img info {path}: {exc}") from exc
    if not isinstance(info, dict):
        raise OSError(f"qemu-img info {path}: not an object")
    return info


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to another http(s) URL."""

    def redirect_request(  # noqa: PLR0917 - urllib's signature
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if not newurl.lower().startswith(("http://", "https://")):
            fp.close()
            raise urllib.error.URLError(f"redirect to a non-http(s) URL: {newurl[:200]}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER: Final = urllib.request.build_opener(_HttpOnlyRedirects())


class LocalMachineFiles:
    """:class:`~.port.MachineFiles` under ``root`` (``[kvm] cache_dir``)."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        artifact_dirs: tuple[Path, ...] = (),
        deadline: float = FETCH_DEADLINE,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.deadline = deadline
        # ``[kvm] artifact_dirs``: the only folders a local-path artifact may come from
        # (none by default), resolved once so a symlinked folder is judged by its target.
        self.artifact_dirs = tuple(Path(os.path.realpath(d)) for d in artifact_dirs)
        self._artifacts = root / "artifacts"
        self._domains = root / "domains"
        for folder in (root, self._artifacts, self._domains):
            if not folder.is_dir():  # only folders it made get its mode (never /tmp's)
                folder.mkdir(parents=True, exist_ok=True)
                folder.chmod(0o755)
        for part in self._artifacts.glob("*.part"):  # a fetch cut short by a crash
            part.unlink(missing_ok=True)

    # -- artifacts -----------------------------------------------------------------------

    def _key(self, url: str, sha256: str | None) -> Path:
        if sha256 is not None:
            return self._artifacts / f"sha256-{sha256}"
        return self._artifacts / f"url-{hashlib.sha256(url.encode()).hexdigest()}"

    def cached(self, url: str, *, sha256: str | None) -> Path | None:
        path = self._key(url, sha256)
        if not path.is_file():
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # just used: not swept before its domain records it
        return path

    def fetch(self, url: str, *, sha256: str | None, field: str) -> Path:
        target = self._key(url, sha256)
        if target.is_file():
            return target
        try:
            return self._fetch(url, target, sha256=sha256, field=field)
        except OSError as exc:  # the cache's own disk (full, read-only): worth a retry
            raise ArtifactFailed(
                f"{field}.url: cannot store {url} in {self._artifacts}: {exc}",
                field=f"{field}.url",
                temporary=True,
            ) from exc

    def _fetch(self, url: str, target: Path, *, sha256: str | None, field: str) -> Path:
        fd, name = tempfile.mkstemp(dir=self._artifacts, suffix=".part")
        part = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                digest = self._copy(url, out, field=field)
            if sha256 is not None and digest != sha256:
                raise ArtifactFailed(
                    f"{field}.sha256: {url} has sha256 {digest}, the score says {sha256}",
                    field=f"{field}.sha256",
                )
            if field == "disk":
                self._refuse_backing(part, url=url, field=field)
            part.chmod(0o644)
            part.replace(target)
        finally:
            part.unlink(missing_ok=True)
        return target

    def _refuse_backing(self, part: Path, *, url: str, field: str) -> None:
        """A qcow2 naming a backing file would make any host file the guest's base."""
        info = _image_info(part, fmt=None)
        if info.get("backing-filename") or info.get("full-backing-filename"):
            raise ArtifactFailed(
                f"{field}.url: {url} names a backing file; only standalone images are used",
                field=f"{field}.url",
            )

    def _copy(self, url: str, out: BinaryIO, *, field: str) -> str:
        """Copy ``url`` into ``out``; return its sha256."""
        digest, size = hashlib.sha256(), 0
        where = f"{field}.url"
        try:
            source = self._open(url, where=where)
        except OSError as exc:
            raise ArtifactFailed(
                f"{where}: cannot read {url}: {exc}", field=where, temporary=False
            ) from exc
        started = time.monotonic()
        with source:
            while True:
                if time.monotonic() - started > self.deadline:
                    raise ArtifactFailed(
                        f"{where}: {url} took more than {self.deadline:.0f}s",
                        field=where,
                        temporary=True,
                    )
                try:
                    chunk = source.read(CHUNK)
                except OSError as exc:
                    raise ArtifactFailed(
                        f"{where}: reading {url} failed: {exc}", field=where, temporary=True
                    ) from exc
                if not chunk:
                    return digest.hexdigest()
                size += len(chunk)
                if size > self.max_bytes:
                    raise ArtifactFailed(
                        f"{where}: {url} is larger than {self.max_bytes} bytes", field=where
                    )
                digest.update(chunk)
                out.write(chunk)

    def _open(self, url: str, *, where: str) -> BinaryIO:
        if not url.startswith(("http://", "https://")):
            return self._open_local(url, where=where)  # the contracts allow absolute paths
        request = urllib.request.Request(url, headers={"User-Agent": "fleet-agent"})
        try:
            response: http.client.HTTPResponse = _OPENER.open(request, timeout=FETCH_TIMEOUT)
        except urllib.error.HTTPError as exc:
            raise ArtifactFailed(
                f"{where}: {url} answered HTTP {exc.code} {exc.reason}", field=where
            ) from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ArtifactFailed(
                f"{where}: {url} is unreachable: {reason}", field=where, temporary=True
            ) from exc
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response.close()
            raise ArtifactFailed(
                f"{where}: {url} is {length} bytes, more than {self.max_bytes}", field=where
            )
        return response

    def _open_local(self, url: str, *, where: str) -> BinaryIO:
        """A local artifact: only a regular file under one of ``artifact_dirs``."""
        resolved = Path(os.path.realpath(url))
        if not any(resolved.is_relative_to(d) for d in self.artifact_dirs):
            allowed = ", ".join(str(d) for d in self.artifact_dirs) or "none"
            raise ArtifactFailed(
                f"{where}: {url} is not under the agent's [kvm] artifact_dirs ({allowed})",
                field=where,
            )
        fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ArtifactFailed(f"{where}: {url} is not a regular file", field=where)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")

    # -- a domain's own files --------------------------------------------------------------

    def prepare(
        self,
        name: str,
        *,
        disk: Path | None,
        user_data: str | None,
        meta_data: str | None,
        uses: tuple[Path, ...] = (),
    ) -> tuple[Path | None, Path | None, Path]:
        home = self._domains / name
        shutil.rmtree(home, ignore_errors=True)  # what a crashed try left
        home.mkdir(parents=True)
        home.chmod(0o755)
        used = sorted({p.name for p in (*uses, *([disk] if disk else []))})
        (home / USES).write_text(json.dumps(used), encoding="utf-8")
        overlay = seed = None
        if disk is not None:
            info = _image_info(disk, fmt=None)
            fmt = info.get("format")
            if not isinstance(fmt, str) or fmt not in _FORMATS:
                raise OSError(f"{disk}: unknown image format {fmt!r}")
            if info.get("backing-filename") or info.get("full-backing-filename"):
                raise OSError(f"{disk} names a backing file")  # cached before the check
            _image_info(disk, fmt=fmt)  # read again as that format, nothing probed
            overlay = home / "disk.qcow2"
            _tool(
                "qemu-img", "create", "-q", "-f", "qcow2",
                "-F", fmt, "-b", str(disk), str(overlay),
            )  # fmt: skip
        if user_data is not None:
            source = home / "cidata"
            source.mkdir()
            (source / "user-data").write_text(user_data, encoding="utf-8")
            meta = meta_data if meta_data is not None else f"instance-id: {name}\n"
            (source / "meta-data").write_text(meta, encoding="utf-8")
            seed = home / "seed.iso"
            _tool(
                "genisoimage", "-quiet", "-output", str(seed), "-volid", "cidata",
                "-joliet", "-rock", str(source / "user-data"), str(source / "meta-data"),
            )  # fmt: skip
            seed.chmod(0o644)
        return overlay, seed, home / "console.log"

    def remove(self, name: str) -> None:
        home = self._domains / name
        if home.parent == self._domains:
            shutil.rmtree(home, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.sweep()

    def sweep(self, *, limit: int = SWEEP_LIMIT, min_age: float = SWEEP_MIN_AGE_S) -> int:
        """Remove up to ``limit`` cached artifacts that no domain's ``uses`` lists and
        that were neither fetched nor looked up for ``min_age`` seconds; the number
        removed. Nothing when a domain folder has no readable ``uses`` (made by an older
        agent, or a crash mid-prepare): what it boots from is not known."""
        in_use: set[str] = set()
        for home in self._domains.iterdir():
            try:
                listed = json.loads((home / USES).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return 0
            if not isinstance(listed, list):
                return 0
            in_use.update(str(n) for n in listed)
        removed, now = 0, time.time()
        for artifact in sorted(self._artifacts.iterdir()):
            if removed >= limit:
                break
            if artifact.name in in_use or artifact.name.endswith(".part"):
                continue
            if now - artifact.stat().st_mtime < min_age:
                continue
            artifact.unlink(missing_ok=True)
            removed += 1
        return removed

    def names(self, prefix: str) -> list[str]:
        with contextlib.suppress(FileNotFoundError):
            return sorted(p.name for p in self._domains.iterdir() if p.name.startswith(prefix))
        return []
