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

What it must never do: use an artifact whose checksum did not match, follow a URL
scheme other than http(s), or read more than ``max_bytes`` of one artifact.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO, Final

from .port import ArtifactFailed

CHUNK: Final = 1 << 20
DEFAULT_MAX_BYTES: Final = 16 << 30  # 16 GiB: a disk image, not a runaway download
FETCH_TIMEOUT: Final = 30.0  # per socket operation
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


class LocalMachineFiles:
    """:class:`~.port.MachineFiles` under ``root`` (``[kvm] cache_dir``)."""

    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._artifacts = root / "artifacts"
        self._domains = root / "domains"
        for folder in (root, self._artifacts, self._domains):
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
        return path if path.is_file() else None

    def fetch(self, url: str, *, sha256: str | None, field: str) -> Path:
        target = self._key(url, sha256)
        if target.is_file():
            return target
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
            part.chmod(0o644)
            part.replace(target)
        finally:
            part.unlink(missing_ok=True)
        return target

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
        with source:
            while True:
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
            return Path(url).open("rb")  # the contracts allow only absolute paths here
        request = urllib.request.Request(url, headers={"User-Agent": "fleet-agent"})
        try:
            response: http.client.HTTPResponse = urllib.request.urlopen(
                request, timeout=FETCH_TIMEOUT
            )
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

    # -- a domain's own files --------------------------------------------------------------

    def prepare(
        self, name: str, *, disk: Path | None, user_data: str | None, meta_data: str | None
    ) -> tuple[Path | None, Path | None, Path]:
        home = self._domains / name
        shutil.rmtree(home, ignore_errors=True)  # what a crashed try left
        home.mkdir(parents=True)
        home.chmod(0o755)
        overlay = seed = None
        if disk is not None:
            info = json.loads(_tool("qemu-img", "info", "--output=json", str(disk)))
            overlay = home / "disk.qcow2"
            _tool(
                "qemu-img", "create", "-q", "-f", "qcow2",
                "-F", str(info.get("format", "raw")), "-b", str(disk), str(overlay),
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

    def names(self, prefix: str) -> list[str]:
        with contextlib.suppress(FileNotFoundError):
            return sorted(p.name for p in self._domains.iterdir() if p.name.startswith(prefix))
        return []
