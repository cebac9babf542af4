"""The agent's files on disk: written whole (a SIGKILL mid-write leaves nothing mounted),
secret content 0600, a re-sealed value the same digest, a wrong key Failed naming it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fleet.contracts import FileSpec
from fleet.runtime.host.container_files import ContainerFiles, FilesFailed, device_files
from fleet.runtime.nats.claims import new_seed, public_key
from fleet.runtime.sealing import seal
from tests.agent.conftest import wait_for

pytestmark = pytest.mark.timeout(60)


def keyed(tmp_path: Path) -> tuple[ContainerFiles, str]:
    seed = new_seed("user")
    (tmp_path / "identity.seed").write_text(seed)
    return device_files(tmp_path), public_key(seed, "user")


def test_files_are_written_whole_and_a_resealed_value_is_no_change(tmp_path: Path) -> None:
    files, key = keyed(tmp_path)
    specs = [
        FileSpec(path="/etc/app.conf", content="site=a\n"),
        FileSpec(path="/run/secret", sealed=seal(b"pw", public_key=key)),
    ]
    got = files.prepare(deployment="d", container="app", files=specs, field="files")
    (conf, secret) = (Path(m.source) for m in got.mounts)
    assert conf.read_text() == "site=a\n"
    assert secret.read_bytes() == b"pw"
    assert conf.stat().st_mode & 0o777 == 0o444
    assert secret.stat().st_mode & 0o777 == 0o400
    resealed = [specs[0], FileSpec(path="/run/secret", sealed=seal(b"pw", public_key=key))]
    again = files.prepare(deployment="d", container="app", files=resealed, field="files")
    assert again.digest == got.digest
    changed = [FileSpec(path="/etc/app.conf", content="site=b\n"), resealed[1]]
    third = files.prepare(deployment="d", container="app", files=changed, field="files")
    assert third.digest != got.digest
    files.forget(deployment="d", keep={"app": third.digest})
    assert not conf.exists()
    assert Path(third.mounts[0].source).read_text() == "site=b\n"


def test_a_value_sealed_to_another_key_fails_naming_the_field(tmp_path: Path) -> None:
    files, _ = keyed(tmp_path)
    other = public_key(new_seed("user"), "user")
    specs = [
        FileSpec(path="/a", content="x"),
        FileSpec(path="/b", sealed=seal(b"x", public_key=other)),
    ]
    with pytest.raises(FilesFailed) as caught:
        files.prepare(deployment="d", container="app", files=specs, field="containers[0].files")
    assert caught.value.field == "containers[0].files[1].sealed"
    assert not (tmp_path / "files" / "d" / "app").exists()  # nothing written
    unresolved = [FileSpec(path="/c", secret={"name": "s", "key": "k"})]  # type: ignore[arg-type]
    with pytest.raises(FilesFailed, match="reference the operator resolves"):
        files.prepare(deployment="d", container="app", files=unresolved, field="files")


_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from fleet.contracts import FileSpec
    from fleet.runtime.host.container_files import ContainerFiles
    real = os.write
    def slow(fd, data):
        real(fd, data[: len(data) // 2])
        Path(sys.argv[2]).write_text("mid-write")
        time.sleep(60)
    os.write = slow
    files = ContainerFiles(Path(sys.argv[1]))
    specs = [FileSpec(path="/a", content="A" * 4000), FileSpec(path="/b", content="B" * 4000)]
    files.prepare(deployment="d", container="app", files=specs, field="files")
    """
)


def test_sigkill_mid_write_leaves_no_partial_file_mounted(tmp_path: Path) -> None:
    root, marker = tmp_path / "files", tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(root), str(marker)])
    try:
        wait_for(marker.exists, timeout=30, what="the writer mid-write")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    staged = list((root / "d" / "app").iterdir())
    assert [p.name.split(".tmp-")[1:] != [] for p in staged] == [True]  # only the staging dir
    files = ContainerFiles(root)
    specs = [FileSpec(path="/a", content="A" * 4000), FileSpec(path="/b", content="B" * 4000)]
    got = files.prepare(deployment="d", container="app", files=specs, field="files")
    assert [Path(m.source).read_text() for m in got.mounts] == ["A" * 4000, "B" * 4000]
    files.forget(deployment="d", keep={"app": got.digest})
    assert [p.name for p in (root / "d" / "app").iterdir()] == [got.digest]


def test_a_plain_file_is_never_group_or_other_writable_on_the_host(tmp_path: Path) -> None:
    files, _ = keyed(tmp_path)
    spec = FileSpec(path="/usr/bin/tool", content="#!/bin/sh\n", mode=0o777)
    got = files.prepare(deployment="d", container="app", files=[spec], field="files")
    assert Path(got.mounts[0].source).stat().st_mode & 0o7777 == 0o755


def test_a_short_write_is_written_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, _ = keyed(tmp_path)
    real_write = os.write

    def short(fd: int, data: bytes | memoryview) -> int:
        return real_write(fd, bytes(data[:3]))  # a full disk's or a signal's short write

    monkeypatch.setattr(os, "write", short)
    spec = FileSpec(path="/etc/app.conf", content="site=a\nmore=b\n")
    got = files.prepare(deployment="d", container="app", files=[spec], field="files")
    monkeypatch.undo()
    assert Path(got.mounts[0].source).read_text() == "site=a\nmore=b\n"


def test_an_out_of_range_uid_is_not_a_crash(tmp_path: Path) -> None:
    files, _ = keyed(tmp_path)
    spec = FileSpec(path="/etc/app.conf", content="x")
    got = files.prepare(deployment="d", container="app", files=[spec], field="files")
    files.owner(got, uid=9_999_999_999)  # no OverflowError out of os.chown
