"""``fleetctl vm`` against the real parts: the system libvirtd, qemu in plain emulation,
the guest image built from Debian's packages, its real sshd and cloud-init.

One VM boot under emulation costs a minute or more on this machine, so the happy path
also carries the checks that need a VM that exists (a name taken)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleet.provisioning.keypair import ensure_fleet_ssh_keypair
from fleet.provisioning.paths import FleetPaths
from fleet.provisioning.ssh import ssh_argv
from tests.fixtures.kvm import URI
from tests.provisioning.conftest import Fleetctl, domains, fleetctl_env, virsh, volumes

pytestmark = [pytest.mark.kvm, pytest.mark.slow]


def _ssh(paths: FleetPaths, port: int, *command: str) -> str:
    key = ensure_fleet_ssh_keypair(paths).private_key
    done = subprocess.run(
        ssh_argv(port=port, private_key=key, command=command),
        capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not done.stderr, done.stderr  # e.g. sudo: unable to resolve host
    return done.stdout.strip()


def _listed(fleetctl: Fleetctl) -> dict[str, dict[str, object]]:
    done = fleetctl("list", "-o", "json")
    assert done.returncode == 0, done.stderr
    return {vm["name"]: vm for vm in json.loads(done.stdout)}


def _nothing_left(paths: FleetPaths, *names: str) -> None:
    """No domain, pool volume, file in the pool folder or console log of ``names``."""
    assert not set(names) & domains()
    made = {f"{n}.qcow2" for n in names} | {f"{n}-seed.iso" for n in names}
    assert not made & volumes(paths.pool_name)
    assert not made & {p.name for p in paths.pool_dir.iterdir()}
    consoles = {p.name for p in (paths.fleet / "consoles").iterdir()}
    assert not {f"{paths.pool_name}.{n}.log" for n in names} & consoles
    locks = {p.name for p in paths.locks.iterdir()}
    assert not {f"{paths.pool_name}.{n}.lock" for n in names} & locks


@pytest.mark.timeout(3600)
def test_two_vms_answer_ssh_as_fleet_admin_then_delete_leaves_nothing(
    fleetctl: Fleetctl, vm_pool: FleetPaths
) -> None:
    names = ("lab-1", "lab-2")
    started = time.monotonic()
    done = fleetctl(
        "create", *names, "--labels", "site=lab,tier=edge", "--memory", "768", "--no-setup"
    )
    print(f"\nvm create of 2 VMs: {time.monotonic() - started:.1f} s\n{done.stdout}")
    assert done.returncode == 0, done.stderr
    listed = _listed(fleetctl)
    assert set(listed) == set(names)
    for name in names:
        vm = listed[name]
        assert vm["state"] == "running"
        assert vm["ready"] is True
        assert vm["labels"] == {"site": "lab", "tier": "edge"}
        port = vm["ssh_port"]
        assert isinstance(port, int)
        # one session (a login costs seconds under emulation): what device setup will need
        said = _ssh(
            vm_pool, port,
            "hostname; sudo -n id -un; python3 -c 'import venv; print(1)'; podman --version",
        ).splitlines()  # fmt: skip
        assert said[:3] == [name, "root", "1"]
        assert said[3].startswith("podman version")
    table = fleetctl("list")
    assert "lab-1" in table.stdout
    assert "site=lab,tier=edge" in table.stdout

    # a name taken: one line, exit 1, the running VM untouched
    taken = fleetctl("create", "lab-1", "--no-setup")
    _one_line_error(taken, 1, "VM name lab-1 is taken", "fleetctl vm delete lab-1")
    assert _listed(fleetctl)["lab-1"]["ready"] is True

    started = time.monotonic()
    done = fleetctl("delete", *names)
    print(f"vm delete of 2 VMs: {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stderr
    _nothing_left(vm_pool, *names)
    assert _listed(fleetctl) == {}


def _wait_for(check: object, *, timeout: float, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f}s"
        time.sleep(0.2)


@pytest.mark.timeout(3600)
def test_sigkill_mid_create_then_rerun_repairs(fleetctl: Fleetctl, vm_pool: FleetPaths) -> None:
    name = "crash-1"
    child = subprocess.Popen(
        [sys.executable, "-m", "fleet.cli.fleetctl.main", "vm", "create", name, "--no-setup"],
        env=fleetctl_env(vm_pool), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(lambda: name in domains(), timeout=600, what="the domain defined")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    # what the crash left: a domain not ready, its volumes
    listed = _listed(fleetctl)
    assert listed[name]["ready"] is False
    assert "(not ready)" in fleetctl("list").stdout

    done = fleetctl(
        "create", name, "--no-setup"
    )  # the re-run removes the half-made VM and makes it anew
    assert done.returncode == 0, done.stderr
    assert "removing what an interrupted create left" in done.stdout
    vm = _listed(fleetctl)[name]
    assert vm["ready"] is True
    port = vm["ssh_port"]
    assert isinstance(port, int)
    assert _ssh(vm_pool, port, "hostname") == name
    assert volumes(vm_pool.pool_name) >= {f"{name}.qcow2", f"{name}-seed.iso"}

    # and a crash again, this time repaired by delete
    child = subprocess.Popen(
        [sys.executable, "-m", "fleet.cli.fleetctl.main", "vm", "create", "crash-2", "--no-setup"],
        env=fleetctl_env(vm_pool), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(lambda: "crash-2.qcow2" in volumes(vm_pool.pool_name), timeout=600,
                  what="the disk volume made")  # fmt: skip
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    done = fleetctl("delete", name, "crash-2")
    assert done.returncode == 0, done.stderr
    _nothing_left(vm_pool, name, "crash-2")


# -- bad input: one line naming what to fix, non-zero, nothing made ---------------------


def _one_line_error(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert done.returncode == code, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.timeout(600)
def test_bad_input_is_one_line_and_makes_nothing(
    fleetctl: Fleetctl, vm_pool: FleetPaths, tmp_path: Path
) -> None:
    before_domains, before_volumes = domains(), volumes(vm_pool.pool_name)

    _one_line_error(fleetctl("create", "Bad_Name"), 2, "invalid VM name 'Bad_Name'", "DNS-1123")
    _one_line_error(fleetctl("create", "ok-1", "--labels", "site"), 2, "--labels", "key=value")
    # the device setup's values and the forwards, refused before anything boots
    nowhere = str(tmp_path / "no-token")
    done = fleetctl("create", "ok-1", "--enrollment-token-file", nowhere)
    _one_line_error(done, 2, "cannot read --enrollment-token-file")
    done = fleetctl("create", "ok-1", "--insecure-registry", "reg.lan:99999")
    _one_line_error(done, 2, "--insecure-registry", "HOST[:PORT]")
    _one_line_error(fleetctl("create", "ok-1", "--forward", "18080:22"), 2, "not 22")
    _one_line_error(fleetctl("create", "a-1", "b-1", "--forward", "18080:80"), 2, "single VM")

    # a pool path that cannot be written: HARMONY_DATA_DIR is a file (root writes anywhere)
    blocker = vm_pool.data_dir / f"not-a-folder-{os.getpid()}"
    blocker.write_text("not a folder")
    try:
        env = fleetctl_env(vm_pool, HARMONY_DATA_DIR=str(blocker))
        done = fleetctl("create", "ok-1", env=env)  # the preflight's cache line
        _one_line_error(done, 1, "preflight", "not writable", "HARMONY_DATA_DIR")
        done = fleetctl("list", env=env)  # no preflight: the pool itself says it
        _one_line_error(done, 1, "pool path", "not writable", "HARMONY_DATA_DIR")
    finally:
        blocker.unlink()

    env = fleetctl_env(vm_pool)
    away = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    done = fleetctl("create", "ok-1", "--libvirt-uri", away, env=env)
    _one_line_error(done, 3, "libvirtd", "not reachable")
    _one_line_error(fleetctl("list", "--libvirt-uri", away), 3, "not reachable")

    missing = tmp_path / "nowhere.qcow2"
    _one_line_error(fleetctl("create", "ok-1", "--image", str(missing)), 1, "is missing")
    corrupt = tmp_path / "corrupt.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(corrupt), "64M"], check=True)
    with corrupt.open("r+b") as f:  # magic and version stay: a cluster size of 2^255
        f.seek(20)
        f.write(b"\x00\x00\x00\xff")
    _one_line_error(fleetctl("create", "ok-1", "--image", str(corrupt)), 1, "corrupt")
    raw = tmp_path / "raw.img"
    raw.write_bytes(os.urandom(4096))
    _one_line_error(fleetctl("create", "ok-1", "--image", str(raw)), 1, "not qcow2")

    foreign = f"foreign-{os.getpid()}"
    xml = tmp_path / "foreign.xml"
    xml.write_text(
        f"<domain type='qemu'><name>{foreign}</name><memory unit='MiB'>64</memory>"
        "<os><type arch='x86_64'>hvm</type></os></domain>"
    )
    virsh("define", str(xml))
    try:
        _one_line_error(fleetctl("create", foreign), 1, "fleet did not create")
        _one_line_error(fleetctl("delete", foreign), 1, "fleet did not create", "not touched")
        assert foreign in domains()
    finally:
        virsh("undefine", foreign, check=False)

    _one_line_error(fleetctl("delete", "never-made"), 1, "no VM never-made")
    assert domains() == before_domains
    assert volumes(vm_pool.pool_name) == before_volumes


def test_preflight_says_emulation_or_kvm_one_line_per_check(
    fleetctl: Fleetctl, vm_pool: FleetPaths
) -> None:
    done = fleetctl("preflight")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert all(line.startswith(("ok   ", "FAIL ")) for line in lines)
    [accel] = [line for line in lines if " accelerator: " in line]
    assert "KVM" in accel or "plain emulation (TCG)" in accel
    assert any(f"libvirtd: {URI}" in line for line in lines)
    done = fleetctl("preflight", "--arch", "riscv64")
    assert done.returncode == 1
    assert "FAIL architecture: riscv64 guests are not supported -> use x86_64" in done.stdout
