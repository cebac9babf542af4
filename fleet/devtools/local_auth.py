"""The local demo's device identity: a throwaway CA and the fleet's authority, as installed.

Why it exists: ``scripts/demo`` runs with device identity on (issue 12,
docs/security.md): nats-server with JWT auth and TLS, the operator holding the
authority, each agent enrolling with a bootstrap credential and a token. This makes
what an install makes, the same way: the CA with :func:`fleet.devtools.tls.make_local_ca`,
the authority with ``fleet-operator --auth-dir DIR --init-auth`` (its keys,
``nats-auth.conf``, ``bootstrap.creds``, ``fleetctl.creds``, ``operator.creds``), whose
keys nats-server is then told to trust. Nothing here signs a credential of its own.

What it must never do: be used for anything but a local, throwaway fleet (the CA's key
and the authority's seeds sit unencrypted under the demo's temp dir, removed with it).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import ConfigError
from fleet.runtime.nats.authority_files import load_or_create
from fleet.runtime.nats.server import OperatorAuth

from .tls import LocalCa, make_local_ca


@dataclass(frozen=True)
class LocalAuth:
    """The files each part of the local fleet is given, and what nats-server trusts."""

    auth_dir: Path  # the operator's --auth-dir
    ca: LocalCa
    server_auth: OperatorAuth

    @property
    def ca_cert(self) -> Path:
        return self.ca.ca_cert

    @property
    def operator_creds(self) -> Path:
        return self.auth_dir / "operator.creds"

    @property
    def bootstrap_creds(self) -> Path:
        """What a device holds before it is enrolled: it can only ask to join."""
        return self.auth_dir / "bootstrap.creds"

    @property
    def fleetctl_creds(self) -> Path:
        """fleetctl's own identity: it can only read."""
        return self.auth_dir / "fleetctl.creds"


def make_local_auth(root: Path) -> LocalAuth:
    """A CA in ``root/tls`` and the authority in ``root/auth``, made by the operator."""
    ca = make_local_ca(root / "tls")
    auth_dir = root / "auth"
    done = subprocess.run(
        [sys.executable, "-m", "fleet.cli.operator", "--auth-dir", str(auth_dir), "--init-auth"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise ConfigError(f"fleet-operator --init-auth failed: {done.stderr[-500:]}")
    authority = load_or_create(auth_dir)  # reads back the keys it made
    return LocalAuth(auth_dir=auth_dir, ca=ca, server_auth=authority.server_auth())
