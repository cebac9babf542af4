"""SSH to a pool VM as ``fleet-admin`` with the fleet key: OpenSSH's client, batch mode.

Why it exists: ``vm create`` is done only when the guest's sshd lets ``fleet-admin`` in
with the fleet key, and the device setup step (next) runs its commands the same way.
OpenSSH's ``ssh`` in ``BatchMode`` never prompts; each try is bounded.

What it must never do: prompt, fall back to a password, or record the throwaway VMs'
host keys in the user's known_hosts (each VM makes new ones on its first boot, and its
port is reused by the next VM).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from .seed import ADMIN_USER

CONNECT_TIMEOUT_S: Final = 60  # TCP connect and the banner: sshd under emulation, loaded, is slow
TRY_TIMEOUT_S: Final = 150.0
PAUSE_S: Final = 2.0


def ssh_argv(*, port: int, private_key: Path, command: Sequence[str] = ()) -> list[str]:
    """``ssh`` to ``fleet-admin@127.0.0.1:port`` with the key only; then ``command``."""
    return [
        "ssh", "-i", str(private_key), "-p", str(port),
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
        "-o", "PasswordAuthentication=no", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
        "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
        "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
        f"{ADMIN_USER}@127.0.0.1", *command,
    ]  # fmt: skip


def answers(*, port: int, private_key: Path) -> tuple[bool, str]:
    """Whether ``fleet-admin`` gets in now (and the last line ssh said when not)."""
    try:
        done = subprocess.run(
            ssh_argv(port=port, private_key=private_key, command=["true"]),
            capture_output=True, text=True, timeout=TRY_TIMEOUT_S, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return False, f"ssh did not finish within {TRY_TIMEOUT_S:.0f}s"
    except FileNotFoundError:
        return False, "ssh is not installed (apt-get install openssh-client)"
    lines = done.stderr.strip().splitlines()
    return done.returncode == 0, (lines[-1] if lines else f"ssh exit {done.returncode}")


def wait_until_answers(*, port: int, private_key: Path, deadline: float) -> tuple[bool, str]:
    """Try until ``fleet-admin`` gets in or ``deadline`` (monotonic) passes."""
    said = "not tried"
    while time.monotonic() < deadline:
        ok, said = answers(port=port, private_key=private_key)
        if ok:
            return True, ""
        time.sleep(PAUSE_S)
    return False, said
