"""The kvm artifact cache against hostile scores: local paths only from ``[kvm]
artifact_dirs`` (regular files, no symlink out), no qcow2 naming a backing file, redirects
only to http(s), a full disk a retry and not a crash, and folders it did not make left
as they were."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.actors.agent.config import parse_config
from fleet.errors import ConfigError
from fleet.runtime.libvirt.files import LocalMachineFiles
from fleet.runtime.libvirt.port import ArtifactFailed

BASE = 'device_id = "pi-01"\n[nats]\nurls = ["nats://127.0.0.1:4222"]\n'
needs_qemu_img = pytest.mark.skipif(
    shutil.which("qemu-img") is None, reason="qemu-img is not installed (scripts/system-deps)"
)


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "kernel").write_bytes(b"kernel bytes")
    return folder


def _files(tmp_path: Path, *dirs: Path) -> LocalMachineFiles:
    return LocalMachineFiles(tmp_path / "cache", artifact_dirs=dirs)


def test_a_local_path_is_refused_without_artifact_dirs(tmp_path: Path, allowed: Path) -> None:
    secret = tmp_path / "identity.seed"
    secret.write_bytes(b"secret")
    files = _files(tmp_path)
    with pytest.raises(ArtifactFailed, match=r"disk\.url: .* artifact_dirs") as caught:
        files.fetch(str(secret), sha256=None, field="disk")
    assert caught.value.field == "disk.url"
    assert not caught.value.temporary
    assert list((tmp_path / "cache" / "artifacts").iterdir()) == []


def test_a_local_path_under_artifact_dirs_is_copied(tmp_path: Path, allowed: Path) -> None:
    files = _files(tmp_path, allowed)
    path = files.fetch(str(allowed / "kernel"), sha256=None, field="boot.kernel")
    assert path.read_bytes() == b"kernel bytes"


def test_a_symlink_out_of_artifact_dirs_is_refused(tmp_path: Path, allowed: Path) -> None:
    secret = tmp_path / "identity.seed"
    secret.write_bytes(b"secret")
    (allowed / "disk.qcow2").symlink_to(secret)
    files = _files(tmp_path, allowed)
    with pytest.raises(ArtifactFailed, match="artifact_dirs"):
        files.fetch(str(allowed / "disk.qcow2"), sha256=None, field="disk")
    with pytest.raises(ArtifactFailed, match="artifact_dirs"):
        files.fetch(str(allowed / ".." / "identity.seed"), sha256=None, field="disk")


def test_a_fifo_under_artifact_dirs_is_refused_without_blocking(
    tmp_path: Path, allowed: Path
) -> None:
    os.mkfifo(allowed / "pipe")
    files = _files(tmp_path, allowed)
    with pytest.raises(ArtifactFailed, match="not a regular file") as caught:
        files.fetch(str(allowed / "pipe"), sha256=None, field="disk")
    assert caught.value.field == "disk.url"


def test_the_config_reads_artifact_dirs() -> None:
    config = parse_config(BASE + '[kvm]\nartifact_dirs = ["/srv/images"]\n', where="t").kvm
    assert config is not None
    assert config.artifact_dirs == (Path("/srv/images"),)
    assert parse_config(BASE + "[kvm]\n", where="t").kvm.artifact_dirs == ()  # type: ignore[union-attr]
    for bad in ('["relative"]', '"/srv"', "[1]"):
        with pytest.raises(ConfigError, match=r"kvm\.artifact_dirs"):
            parse_config(BASE + f"[kvm]\nartifact_dirs = {bad}\n", where="t")


@needs_qemu_img
def test_a_qcow2_naming_a_backing_file_is_refused(tmp_path: Path, allowed: Path) -> None:
    secret = tmp_path / "identity.seed"
    secret.write_bytes(b"secret" * 100)
    image = allowed / "disk.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(secret), str(image)],
        check=True,
        timeout=60,
    )
    files = _files(tmp_path, allowed)
    with pytest.raises(ArtifactFailed, match="backing file") as caught:
        files.fetch(str(image), sha256=None, field="disk")
    assert caught.value.field == "disk.url"
    assert files.cached(str(image), sha256=None) is None


@needs_qemu_img
def test_a_standalone_qcow2_gets_an_overlay(tmp_path: Path, allowed: Path) -> None:
    image = allowed / "disk.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(image), "1M"], check=True, timeout=60
    )
    files = _files(tmp_path, allowed)
    disk = files.fetch(str(image), sha256=None, field="disk")
    overlay, seed, _ = files.prepare("vm", disk=disk, user_data=None, meta_data=None)
    assert overlay is not None
    assert overlay.is_file()
    assert seed is None


def test_a_full_disk_is_a_temporary_failure(
    tmp_path: Path, allowed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _files(tmp_path, allowed)

    def full(*args: object, **kwargs: object) -> object:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full)  # files.py calls tempfile.mkstemp
    with pytest.raises(ArtifactFailed, match="No space left") as caught:
        files.fetch(str(allowed / "kernel"), sha256=None, field="boot.kernel")
    assert caught.value.temporary
    assert caught.value.field == "boot.kernel.url"


def test_an_existing_cache_folder_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    LocalMachineFiles(shared)
    assert shared.stat().st_mode & 0o7777 == 0o1777


class _Redirect(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", "ftp://127.0.0.1:1/disk")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def redirecting() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/disk"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_a_redirect_to_another_scheme_is_not_followed(tmp_path: Path, redirecting: str) -> None:
    files = _files(tmp_path)
    with pytest.raises(ArtifactFailed, match="non-http") as caught:
        files.fetch(redirecting, sha256=None, field="disk")
    assert caught.value.field == "disk.url"


def test_artifacts_no_domain_uses_are_swept_after_a_removal(tmp_path: Path, allowed: Path) -> None:
    (allowed / "initrd").write_bytes(b"initrd bytes")
    files = _files(tmp_path, allowed)
    kernel = files.fetch(str(allowed / "kernel"), sha256=None, field="boot.kernel")
    initrd = files.fetch(str(allowed / "initrd"), sha256=None, field="boot.initrd")
    files.prepare("a", disk=None, user_data=None, meta_data=None, uses=(kernel, initrd))
    files.prepare("b", disk=None, user_data=None, meta_data=None, uses=(kernel,))
    files.remove("a")  # both fetched just now: kept however unused
    assert initrd.exists()
    assert files.sweep(min_age=0) == 1  # b still boots from the kernel
    assert kernel.exists()
    assert not initrd.exists()
    files.remove("b")
    assert files.sweep(min_age=0, limit=0) == 0  # bounded
    assert files.sweep(min_age=0) == 1
    assert list((tmp_path / "cache" / "artifacts").iterdir()) == []


def test_no_sweep_while_a_domain_says_nothing_of_what_it_uses(
    tmp_path: Path, allowed: Path
) -> None:
    files = _files(tmp_path, allowed)
    kernel = files.fetch(str(allowed / "kernel"), sha256=None, field="boot.kernel")
    (tmp_path / "cache" / "domains" / "older-agent").mkdir()
    assert files.sweep(min_age=0) == 0
    assert kernel.exists()
