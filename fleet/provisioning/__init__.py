"""Test devices from nothing: the fleet SSH keypair, guest images and a libvirt VM pool.

The names follow issue 15 (the system fleet is built from): :class:`HarmonyFleetPool`,
:func:`ensure_harmony_fleet_pool`, :class:`FleetSshKeypair`,
:func:`ensure_fleet_ssh_keypair`, :func:`check_fleet_smoke_preflight_for_arch`; the
on-disk cache is ``$HARMONY_DATA_DIR/fleet/`` (:mod:`.paths`). Device setup over SSH
builds on this package next; it must never import an actor or the operator.
"""

from .keypair import FleetSshKeypair, ensure_fleet_ssh_keypair
from .paths import FleetPaths
from .pool import HarmonyFleetPool, ensure_harmony_fleet_pool
from .preflight import check_fleet_smoke_preflight_for_arch

__all__ = [
    "FleetPaths",
    "FleetSshKeypair",
    "HarmonyFleetPool",
    "check_fleet_smoke_preflight_for_arch",
    "ensure_fleet_ssh_keypair",
    "ensure_harmony_fleet_pool",
]
