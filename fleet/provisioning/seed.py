"""The cloud-init NoCloud seed of a pool VM: ``fleet-admin`` with sudo and the fleet key.

Why it exists: each VM learns its hostname and its one admin user from this seed
(cloud-init's NoCloud data source reads an ISO 9660 volume labelled ``cidata``). The
user-data is JSON (YAML's subset), so no value can break out of its field. The password,
only when ``FLEET_VM_ADMIN_PASSWORD`` is set, goes in hashed (SHA-512 crypt by ``openssl
passwd -6``): the seed volume is world-readable in the pool folder.

What it must never do: put the password in clear anywhere, or let password SSH logins in
(the key is the way in; the password is for the serial console).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import tempfile
from pathlib import Path
from typing import Final

from .errors import ProvisioningFailed

ADMIN_USER: Final = "fleet-admin"
PASSWORD_ENV: Final = "FLEET_VM_ADMIN_PASSWORD"
TOOL_TIMEOUT: Final = 60.0


def user_data(*, hostname: str, public_key: str, password_hash: str | None) -> str:
    admin: dict[str, object] = {
        "name": ADMIN_USER,
        "groups": ["sudo"],
        "sudo": "ALL=(ALL) NOPASSWD:ALL",
        "shell": "/bin/bash",
        "ssh_authorized_keys": [public_key],
        "lock_passwd": password_hash is None,
    }
    if password_hash is not None:
        admin["hashed_passwd"] = password_hash
    doc = {
        "hostname": hostname,
        "preserve_hostname": False,
        "manage_etc_hosts": True,  # the hostname resolves (sudo looks it up each time)
        "users": [admin],
        "ssh_pwauth": False,
        "disable_root": True,
    }
    return "#cloud-config\n" + json.dumps(doc, indent=1) + "\n"


def meta_data(*, hostname: str) -> str:
    # a new instance id each time: a VM re-made under an old name runs cloud-init afresh
    return json.dumps({"instance-id": f"{hostname}-{secrets.token_hex(4)}",
                       "local-hostname": hostname}) + "\n"  # fmt: skip


def hash_password(password: str) -> str:
    if not password or "\n" in password or len(password) > 256:
        raise ProvisioningFailed(
            f"{PASSWORD_ENV} must be one line of 1 to 256 characters (or unset: key only)"
        )
    try:
        done = subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True,
            text=True, timeout=TOOL_TIMEOUT, check=False,
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise ProvisioningFailed(f"openssl is needed to hash {PASSWORD_ENV}") from exc
    hashed = done.stdout.strip()
    if done.returncode != 0 or not hashed.startswith("$6$"):
        raise ProvisioningFailed(f"openssl passwd failed to hash {PASSWORD_ENV}")
    return hashed


def seed_iso(*, hostname: str, public_key: str, password_hash: str | None) -> bytes:
    """The NoCloud seed as ISO 9660 bytes (``genisoimage``, volume id ``cidata``)."""
    with tempfile.TemporaryDirectory(prefix="fleet-seed-") as scratch:
        work = Path(scratch)
        (work / "user-data").write_text(
            user_data(hostname=hostname, public_key=public_key, password_hash=password_hash),
            encoding="utf-8",
        )
        (work / "meta-data").write_text(meta_data(hostname=hostname), encoding="utf-8")
        out = work / "seed.iso"
        try:
            done = subprocess.run(
                ["genisoimage", "-quiet", "-output", str(out), "-volid", "cidata",
                 "-joliet", "-rock", str(work / "user-data"), str(work / "meta-data")],
                capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False,
            )  # fmt: skip
        except FileNotFoundError as exc:
            raise ProvisioningFailed(
                "genisoimage is not installed (scripts/system-deps installs it)"
            ) from exc
        if done.returncode != 0:
            raise ProvisioningFailed(f"genisoimage failed: {done.stderr.strip()[-300:]}")
        return out.read_bytes()
