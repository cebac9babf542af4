"""The fleet SSH keypair: made once under ``$HARMONY_DATA_DIR/fleet/ssh/``, then reused.

Why it exists: every VM of the pool (and, next, every device set up over SSH) trusts
this one ed25519 key for ``fleet-admin``. It is made by ``ssh-keygen`` (OpenSSH's own
format, which every SSH client reads) into a temporary name and renamed into place, so
a crash mid-way leaves no half key.

What it must never do: replace an existing key, or leave the private key readable by
anyone but its owner (0600, in a 0700 folder).
"""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .errors import ProvisioningFailed
from .paths import FleetPaths

KEY_NAME: Final = "id_ed25519"
KEYGEN_TIMEOUT: Final = 60.0


@dataclass(frozen=True)
class FleetSshKeypair:
    """The private key's path and the public key's one line (``ssh-ed25519 AAAA... c``)."""

    private_key: Path
    public_key: str

    @property
    def public_key_path(self) -> Path:
        return self.private_key.with_name(self.private_key.name + ".pub")


def ensure_fleet_ssh_keypair(paths: FleetPaths | None = None) -> FleetSshKeypair:
    """The keypair under ``paths.ssh``, made now if absent; its mode checked each time."""
    paths = paths or FleetPaths.from_env()
    folder = paths.ssh
    private = folder / KEY_NAME
    public = folder / f"{KEY_NAME}.pub"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
        if private.is_file() and not public.is_file():
            _derive_public(private, public)  # the key the VMs trust is never replaced
        elif not private.is_file():
            _generate(folder)
        private.chmod(0o600)
        line = public.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvisioningFailed(
            f"the fleet SSH keypair in {folder} cannot be made or read: {exc}; "
            "set HARMONY_DATA_DIR to a writable folder"
        ) from exc
    if not line.startswith("ssh-ed25519 ") or "\n" in line:
        raise ProvisioningFailed(
            f"{public} is not an ed25519 public key; move it and {private} away to make new ones"
        )
    return FleetSshKeypair(private_key=private, public_key=line)


def _derive_public(private: Path, public: Path) -> None:
    """The public half again, from the private key (``ssh-keygen -y``)."""
    try:
        done = subprocess.run(
            ["ssh-keygen", "-y", "-f", str(private)],
            capture_output=True, text=True, timeout=KEYGEN_TIMEOUT, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise ProvisioningFailed(
            "ssh-keygen is not installed: apt-get install openssh-client"
        ) from exc
    if done.returncode != 0:
        raise ProvisioningFailed(
            f"{public} is missing and ssh-keygen cannot derive it from {private}: "
            f"{done.stderr.strip()[-300:]}"
        )
    temp = public.with_name(f".{public.name}.{os.getpid()}")
    temp.write_text(done.stdout.strip() + "\n", encoding="ascii")
    temp.replace(public)


def _generate(folder: Path) -> None:
    temp = folder / f".{KEY_NAME}.{os.getpid()}"
    for stale in (temp, temp.with_name(temp.name + ".pub")):
        stale.unlink(missing_ok=True)
    comment = f"harmony-fleet@{socket.gethostname()}"
    try:
        done = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(temp)],
            capture_output=True, text=True, timeout=KEYGEN_TIMEOUT, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise ProvisioningFailed(
            "ssh-keygen is not installed: apt-get install openssh-client"
        ) from exc
    if done.returncode != 0:
        raise ProvisioningFailed(f"ssh-keygen failed: {done.stderr.strip()[-300:]}")
    temp.chmod(0o600)
    # the public half first: a private key alone is re-made, never a public key alone used
    temp.with_name(temp.name + ".pub").replace(folder / f"{KEY_NAME}.pub")
    temp.replace(folder / KEY_NAME)
