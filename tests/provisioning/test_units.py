"""The VM pool's pure parts and local tools: paths, seed, marks, labels, keypair, image
checks (real ssh-keygen, openssl and qemu-img; no libvirtd)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fleet.cli.fleetctl.vm import parse_labels
from fleet.errors import ConfigError
from fleet.provisioning import FleetPaths, ensure_fleet_ssh_keypair
from fleet.provisioning.errors import ProvisioningFailed
from fleet.provisioning.image import PACKAGES, check_image, image_key
from fleet.provisioning.pool import check_vm_labels, check_vm_name
from fleet.provisioning.preflight import check_fleet_smoke_preflight_for_arch
from fleet.provisioning.seed import hash_password, user_data
from fleet.runtime.libvirt.fleet_vms import VmMarks, read_vm_marks, render_marks


def test_paths_default_and_env() -> None:
    given = FleetPaths.from_env({"HARMONY_DATA_DIR": "/srv/h", "HARMONY_FLEET_POOL_NAME": "p1"})
    assert given.pool_dir == Path("/srv/h/fleet/pools/p1")
    assert given.cloud_images == Path("/srv/h/fleet/cloud-images")
    assert given.ssh == Path("/srv/h/fleet/ssh")
    default = FleetPaths.from_env({"XDG_DATA_HOME": "/x"})
    assert default.pool_name == "harmony-fleet"
    expected = Path("/var/lib/harmony") if os.geteuid() == 0 else Path("/x/harmony")
    assert default.data_dir == expected
    with pytest.raises(ConfigError, match="HARMONY_DATA_DIR 'rel' must be an absolute path"):
        FleetPaths.from_env({"HARMONY_DATA_DIR": "rel"})
    with pytest.raises(ConfigError, match="HARMONY_FLEET_POOL_NAME"):
        FleetPaths.from_env({"HARMONY_FLEET_POOL_NAME": "a/b"})


def test_names_and_labels_are_checked() -> None:
    assert check_vm_name("lab-1") == "lab-1"
    for bad in ("Lab_1", "-x", "a" * 64, "a.b", ""):
        with pytest.raises(ConfigError, match="invalid VM name"):
            check_vm_name(bad)
    assert parse_labels(["site=lab,tier=edge", "x=1"]) == {"site": "lab", "tier": "edge", "x": "1"}
    with pytest.raises(ConfigError, match="say key=value"):
        parse_labels(["site"])
    with pytest.raises(ConfigError, match="--labels: invalid label key"):
        check_vm_labels({"bad key": "v"})


def test_seed_makes_fleet_admin_with_the_key_and_never_a_clear_password() -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA test"
    keyed = json.loads(user_data(hostname="lab-1", public_key=key, password_hash=None)[14:])
    [admin] = keyed["users"]
    assert admin["name"] == "fleet-admin"
    assert admin["ssh_authorized_keys"] == [key]
    assert admin["sudo"] == "ALL=(ALL) NOPASSWD:ALL"
    assert admin["lock_passwd"] is True
    assert "hashed_passwd" not in admin
    assert keyed["ssh_pwauth"] is False
    assert keyed["hostname"] == "lab-1"
    assert keyed["manage_etc_hosts"] is True
    hashed = hash_password("s3cret pass")
    assert hashed.startswith("$6$")
    text = user_data(hostname="lab-1", public_key=key, password_hash=hashed)
    assert "s3cret" not in text
    assert json.loads(text[14:])["users"][0]["hashed_passwd"] == hashed
    with pytest.raises(ProvisioningFailed, match="FLEET_VM_ADMIN_PASSWORD must be one line"):
        hash_password("two\nlines")


def test_vm_marks_round_trip_and_hostile_metadata_is_refused() -> None:
    marks = VmMarks(pool="harmony-fleet", ssh_port=40022, labels={"site": "lab"}, ready=True)
    assert read_vm_marks(ET.tostring(render_marks(marks), encoding="unicode")) == marks
    for bad in (
        "<vm pool='p' ssh-port='99999'/>",
        "<vm pool='p'/>",
        "<vm ssh-port='22'/>",
        "<vm pool='p' ssh-port='22'><other/></vm>",
        "<vm pool='p' ssh-port='2 2'/>",
        "not xml",
        "<vm pool='p' ssh-port='22'>" + "<label key='k'>v</label>" * 65 + "</vm>",
        "x" * 10_000,
    ):
        with pytest.raises(ValueError, match="metadata"):
            read_vm_marks(bad)


def test_keypair_made_once_0600_and_reused(tmp_path: Path) -> None:
    paths = FleetPaths(data_dir=tmp_path)
    first = ensure_fleet_ssh_keypair(paths)
    assert first.private_key == tmp_path / "fleet/ssh/id_ed25519"
    assert stat.S_IMODE(first.private_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.ssh.stat().st_mode) == 0o700
    assert first.public_key.startswith("ssh-ed25519 ")
    first.private_key.chmod(0o644)
    again = ensure_fleet_ssh_keypair(paths)
    assert again == first
    assert stat.S_IMODE(again.private_key.stat().st_mode) == 0o600
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(again.private_key)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert derived.split()[:2] == first.public_key.split()[:2]
    # the public half lost: derived again from the private key, which is kept (the VMs
    # made so far trust it)
    secret = first.private_key.read_bytes()
    Path(str(first.private_key) + ".pub").unlink()
    third = ensure_fleet_ssh_keypair(paths)
    assert first.private_key.read_bytes() == secret
    assert third.public_key.split()[:2] == first.public_key.split()[:2]


def test_image_checks_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ProvisioningFailed, match="is missing"):
        check_image(tmp_path / "none.qcow2")
    raw = tmp_path / "raw.img"
    raw.write_bytes(b"\0" * 4096)
    with pytest.raises(ProvisioningFailed, match="is 'raw', not qcow2"):
        check_image(raw)
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "8M"], check=True)
    assert check_image(base)["format"] == "qcow2"
    over = tmp_path / "over.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(over)],
        check=True,
    )
    with pytest.raises(ProvisioningFailed, match="names a backing file"):
        check_image(over)
    with base.open("r+b") as f:
        f.seek(20)
        f.write(b"\x00\x00\x00\xff")
    with pytest.raises(ProvisioningFailed, match="is corrupt"):
        check_image(base)


def test_image_key_follows_the_package_list() -> None:
    assert image_key() == image_key(PACKAGES)
    assert image_key((*PACKAGES, "vim")) != image_key()


def test_preflight_refuses_an_unsupported_architecture(tmp_path: Path) -> None:
    report = check_fleet_smoke_preflight_for_arch("riscv64", paths=FleetPaths(data_dir=tmp_path))
    assert not report.ok
    [line] = [c.line() for c in report.checks]
    assert line == (
        "FAIL architecture: riscv64 guests are not supported -> "
        "use x86_64 (amd64): the only guest image fleet builds today"
    )
