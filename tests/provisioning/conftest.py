"""The VM pool's world: the system libvirtd (tests/fixtures/kvm.py), the guest image built
once per machine and a pool of this session's own.

* ``fleet_paths`` (session): ``HARMONY_DATA_DIR`` = :data:`DATA_DIR` under /var/tmp, so
  the image (keyed by its package list) and the fleet key are built once per machine and
  shared with later sessions; the pool is ``harmony-fleet-test-<pid>``, this session's.
* ``fleet_image`` (session): the built guest image (minutes the first time).
* ``vm_pool`` (session): teardown removes every domain and volume of this session's pool,
  and the pool, even when a test failed; it touches no other domain.
* ``fleetctl``: runs ``fleetctl`` in a child process with this world's environment.

Tests that use them are marked ``kvm`` (and skip without root or libvirt, except in CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleet.provisioning.image import GuestImage, ensure_guest_image
from fleet.provisioning.paths import FleetPaths
from tests.fixtures.kvm import URI

DATA_DIR = Path("/var/tmp/fleet-harmony")
Fleetctl = Callable[..., subprocess.CompletedProcess[str]]


def virsh(*args: str, check: bool = True) -> str:
    done = subprocess.run(
        ["virsh", "-c", URI, *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"virsh {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def domains() -> set[str]:
    return {line.strip() for line in virsh("list", "--all", "--name").splitlines() if line.strip()}


def volumes(pool: str) -> set[str]:
    out = virsh("vol-list", pool, check=False)
    rows = out.splitlines()[2:]  # a header and a rule
    return {row.split()[0] for row in rows if row.strip()}


@pytest.fixture(scope="session")
def fleet_paths(libvirt_daemons: str) -> FleetPaths:
    DATA_DIR.mkdir(mode=0o755, exist_ok=True)
    return FleetPaths(data_dir=DATA_DIR, pool_name=f"harmony-fleet-test-{os.getpid()}")


@pytest.fixture(scope="session")
def fleet_image(fleet_paths: FleetPaths) -> GuestImage:
    return ensure_guest_image(fleet_paths)


def _clean_pool(paths: FleetPaths) -> None:
    """Remove this session's pool: only domains whose name a pool volume carries."""
    pool = paths.pool_name
    for volume in volumes(pool):
        name = volume.removesuffix(".qcow2").removesuffix("-seed.iso")
        if name in domains():
            virsh("destroy", name, check=False)
            virsh("undefine", name, check=False)
        virsh("vol-delete", volume, "--pool", pool, check=False)
    virsh("pool-destroy", pool, check=False)
    virsh("pool-undefine", pool, check=False)
    shutil.rmtree(paths.pool_dir, ignore_errors=True)
    for left in (*paths.locks.glob(f"{pool}.*"), *(paths.fleet / "consoles").glob(f"{pool}.*")):
        left.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def vm_pool(fleet_paths: FleetPaths, fleet_image: GuestImage) -> Iterator[FleetPaths]:
    try:
        yield fleet_paths
    finally:
        _clean_pool(fleet_paths)


def fleetctl_env(paths: FleetPaths, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "FLEET_VM_ADMIN_PASSWORD"}
    env.update(HARMONY_DATA_DIR=str(paths.data_dir), HARMONY_FLEET_POOL_NAME=paths.pool_name)
    env.update(extra)
    return env


@pytest.fixture
def fleetctl(vm_pool: FleetPaths) -> Fleetctl:
    def run(
        *args: str, timeout: float = 1500, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fleet.cli.fleetctl.main", "vm", *args],
            env=env if env is not None else fleetctl_env(vm_pool),
            capture_output=True, text=True, timeout=timeout, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    return run
