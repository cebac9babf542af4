"""A real OpenSSH sshd for device setup's tests, on 127.0.0.1 and a port of its own.

Why it exists: what a user sees when device setup (:mod:`fleet.provisioning.setup`) fails
(a host nobody answers at, a refused key, a changed host key, a login without sudo, a
device the preflight refuses) is only real against a real sshd. :func:`running_sshd`
starts Debian's ``/usr/sbin/sshd -D -e`` as a child with a folder of its own: its config,
its ed25519 host key (``ssh-keygen``), its PID file and one ``authorized_keys`` file for
every user; :meth:`Sshd.restart` brings it back on the same port, with a new host key
when asked (a reinstalled device). :func:`throwaway_user` makes a login of its own
(``useradd``) and removes it (``userdel``) whatever happens; :func:`tool_dir` makes a
``PATH`` folder of the real tools with some left out or replaced (``SetEnv PATH=``), so
the device the facts script reads can lack podman or claim another architecture.

When sshd cannot run here (not root, openssh-server or ssh-keygen missing)
:func:`sshd_or_skip` skips, except under ``CI=true`` where it fails: CI must never go
green by skipping device setup's real tests.

What it must never do: listen beyond 127.0.0.1, touch the machine's own sshd or
``/etc/ssh``, outlive its test (stopped by its PID), or leave a user behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final, NoReturn

import pytest

SSHD: Final = Path("/usr/sbin/sshd")
PRIVSEP_DIR: Final = Path("/run/sshd")  # sshd refuses to start without it
START_TIMEOUT_S: Final = 15.0
STOP_TIMEOUT_S: Final = 10.0
BIND_TRIES: Final = 3  # a free port taken between the probe and sshd's bind: another port
SYSTEM_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SshdUnusable(RuntimeError):
    """sshd cannot be run here."""


def sshd_or_skip() -> None:
    """Skip (fail under ``CI=true``) unless an sshd of the test's own can run here."""
    missing = [
        what
        for what, ok in (
            ("root (sshd runs sessions as their users)", os.geteuid() == 0),
            (f"{SSHD} (Debian's openssh-server)", os.access(SSHD, os.X_OK)),
            ("ssh-keygen (openssh-client)", shutil.which("ssh-keygen") is not None),
            ("useradd and userdel (passwd)", all(map(shutil.which, ("useradd", "userdel")))),
        )
        if not ok
    ]  # fmt: skip
    if missing:
        _unusable(f"a real sshd needs {', '.join(missing)}")


def _unusable(why: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"sshd is required in CI but unusable here: {why}", pytrace=False)
    pytest.skip(f"sshd unusable here: {why}")


def free_port() -> int:
    """A 127.0.0.1 port nobody listens on (now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def keygen(path: Path, *, comment: str) -> str:
    """A new ed25519 keypair at ``path`` (and ``path.pub``); its public line."""
    for old in (path, path.with_name(path.name + ".pub")):
        old.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        capture_output=True, timeout=60, check=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return path.with_name(path.name + ".pub").read_text(encoding="ascii").strip()


class Sshd:
    """One sshd of a test's own: its folder, port, host key and the keys it lets in."""

    def __init__(self, folder: Path, *, path_env: str | None = None) -> None:
        self.folder = folder
        self.path_env = path_env
        self.port = free_port()
        self.config = folder / "sshd_config"
        self.host_key = folder / "ssh_host_ed25519_key"
        self.authorized_keys = folder / "authorized_keys"
        self.pid_file = folder / "sshd.pid"
        self.log_file = folder / "sshd.log"
        self.host_public_key = ""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def authorize(self, *public_keys: str) -> None:
        """Let exactly these keys in (as any user the config allows)."""
        self.authorized_keys.write_text("".join(k.strip() + "\n" for k in public_keys))
        self.authorized_keys.chmod(0o644)  # read as the user logging in

    def log(self) -> str:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _write_config(self) -> None:
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"PidFile {self.pid_file}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "StrictModes no",
            "UsePAM no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "AllowTcpForwarding no",
            "X11Forwarding no",
            "PrintMotd no",
            "LogLevel VERBOSE",
        ]
        if self.path_env is not None:
            lines.append(f"SetEnv PATH={self.path_env}")
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self, *, new_host_key: bool = False) -> None:
        """Start it (a host key made the first time, or when ``new_host_key``) and wait
        until it answers with its banner. The port is kept; only the first start may
        pick another when the one probed was taken in between."""
        if new_host_key or not self.host_key.is_file():
            self.host_public_key = keygen(self.host_key, comment="fleet-test-sshd")
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        first = self._process is None and not self.log_file.exists()
        for attempt in range(BIND_TRIES):
            self._write_config()
            with self.log_file.open("ab") as log:
                self._process = subprocess.Popen(
                    [str(SSHD), "-D", "-e", "-f", str(self.config)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            if self._answers():
                return
            self.stop()
            if not (first and "Cannot bind" in self.log() and attempt + 1 < BIND_TRIES):
                break
            self.port = free_port()
        raise SshdUnusable(f"sshd did not start on 127.0.0.1:{self.port}: {self.log()[-800:]}")

    def _answers(self) -> bool:
        """True once the port greets with an SSH banner; False if sshd exited."""
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn,
            ):
                conn.settimeout(2)
                if conn.recv(64).startswith(b"SSH-2.0-"):
                    return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        """Stop the listener by its PID (SIGTERM, then SIGKILL); sessions end with their
        connections."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)

    def restart(self, *, new_host_key: bool = False) -> None:
        """Stop and start again on the same port (with a new host key: a reinstalled
        device)."""
        self.stop()
        self.start(new_host_key=new_host_key)


@contextlib.contextmanager
def sshd_folder() -> Iterator[Path]:
    """A folder every user can traverse (a login reads ``authorized_keys`` as itself, and
    pytest's own temporary folders are root's alone), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="fleet-sshd-"))
    try:
        folder.chmod(0o755)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def running_sshd(folder: Path, *, path_env: str | None = None) -> Iterator[Sshd]:
    """An sshd started in ``folder`` (made if absent), stopped however the test ends."""
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    server = Sshd(folder, path_env=path_env)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def user_exists(name: str) -> bool:
    done = subprocess.run(["getent", "passwd", name], capture_output=True, timeout=30, check=False)
    return done.returncode == 0


@contextlib.contextmanager
def throwaway_user(home: Path) -> Iterator[str]:
    """A login of its own with its home at ``home`` and no rights at all (no sudo, no
    password: ``*``, which sshd does not take for a locked account as it takes ``!``);
    ``userdel`` however the test ends."""
    name = f"fleettest{os.getpid() % 100000}x{time.monotonic_ns() % 10000}"
    try:
        subprocess.run(
            ["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/sh",
             "--password", "*", "--comment", "fleet sshd test", name],
            capture_output=True, text=True, timeout=60, check=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        yield name
    finally:
        if user_exists(name):
            subprocess.run(
                ["userdel", "--force", name], capture_output=True, timeout=60, check=False
            )
        if user_exists(name):
            raise AssertionError(f"userdel left the test user {name} behind")


def tool_dir(
    folder: Path,
    *,
    leave_out: Sequence[str] = (),
    scripts: Mapping[str, str] | None = None,
) -> Path:
    """A ``PATH`` folder of this machine's tools (each a link to the first of its name on
    :data:`SYSTEM_PATH`) except those in ``leave_out``; ``scripts`` are shell scripts put
    in place of a tool (``{"uname": "echo mips64"}``). Every tool, not only those the facts
    script runs: a login's shell start-up files may run more (root's ``~/.bashrc`` here puts
    pyenv's shims, bash scripts, before it)."""
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    scripts = scripts or {}
    for directory in SYSTEM_PATH.split(":"):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for real in sorted(Path(directory).iterdir()):
                name = real.name
                if name in leave_out or name in scripts or os.path.lexists(folder / name):
                    continue
                if real.is_file() and os.access(real, os.X_OK):
                    (folder / name).symlink_to(real)
    for tool, body in scripts.items():
        script = folder / tool
        script.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        script.chmod(0o755)
    return folder
