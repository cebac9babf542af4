"""Where the provisioning cache lives: ``$HARMONY_DATA_DIR/fleet/`` and its parts.

Why it exists: one owner for the environment variables and the folder layout, so the
image builder, the keypair and the pool agree on where things are::

    $HARMONY_DATA_DIR/fleet/
    ├── cloud-images/           guest images (built, or fetched from a path or URL)
    ├── ssh/                    the fleet SSH keypair (id_ed25519, 0600)
    ├── locks/                  one flock per VM being created
    └── pools/<pool name>/      the libvirt dir pool: each VM's disk and seed volumes

``HARMONY_DATA_DIR`` defaults to ``/var/lib/harmony`` for root (the system libvirtd runs
qemu as ``libvirt-qemu``, which cannot traverse ``/root``), else to
``$XDG_DATA_HOME/harmony`` (``~/.local/share/harmony``). ``HARMONY_FLEET_POOL_NAME``
names the pool (default ``harmony-fleet``).

What it must never do: create anything (that is the callers' job, each with its modes).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fleet.errors import ConfigError

DEFAULT_POOL_NAME: Final = "harmony-fleet"
ROOT_DATA_DIR: Final = Path("/var/lib/harmony")
_POOL_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class FleetPaths:
    """The cache folders under one ``$HARMONY_DATA_DIR`` and the pool's name."""

    data_dir: Path
    pool_name: str = DEFAULT_POOL_NAME

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FleetPaths:
        env = os.environ if env is None else env
        pool_name = env.get("HARMONY_FLEET_POOL_NAME") or DEFAULT_POOL_NAME
        if not _POOL_NAME.match(pool_name):
            raise ConfigError(
                f"HARMONY_FLEET_POOL_NAME {pool_name[:80]!r} is not a pool name "
                "(letters, digits, '.', '_', '-'; at most 63)"
            )
        given = env.get("HARMONY_DATA_DIR")
        if given:
            data_dir = Path(given)
            if not data_dir.is_absolute():
                raise ConfigError(f"HARMONY_DATA_DIR {given!r} must be an absolute path")
        elif os.geteuid() == 0:
            data_dir = ROOT_DATA_DIR
        else:
            xdg = env.get("XDG_DATA_HOME")
            base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local/share"
            data_dir = base / "harmony"
        return cls(data_dir=data_dir, pool_name=pool_name)

    @property
    def fleet(self) -> Path:
        return self.data_dir / "fleet"

    @property
    def cloud_images(self) -> Path:
        return self.fleet / "cloud-images"

    @property
    def ssh(self) -> Path:
        return self.fleet / "ssh"

    @property
    def locks(self) -> Path:
        return self.fleet / "locks"

    @property
    def pool_dir(self) -> Path:
        return self.fleet / "pools" / self.pool_name
