"""Guest images for the VM pool: a Debian 12 root built here, or a cloud image given.

Why it exists: there is no internet to download a cloud image from, so
:func:`build_guest_image` builds one from this machine's apt sources with ``mmdebstrap``
(systemd, openssh-server, python3, python3-venv, podman with what rootless podman needs:
uidmap, slirp4netns, dbus, dbus-user-session, Recommends that mmdebstrap leaves out; sudo,
cloud-init, and the kernel
``linux-image-cloud-amd64`` with its initrd, taken out for direct kernel boot), as an
ext4 filesystem (``mkfs.ext4 -d``, no loop device, no partition table) converted to
qcow2. It lands in ``$HARMONY_DATA_DIR/fleet/cloud-images/debian-12-<key>/``, ``<key>``
a hash of the package list and the recipe: paid once per machine. cloud-init reads only
the NoCloud seed; systemd-networkd takes the user-mode network's DHCP lease.

:func:`given_image` takes a path or URL of a qcow2 cloud image instead (copied or
fetched once into ``cloud-images/given/`` by the kvm runtime's artifact cache,
:class:`fleet.runtime.libvirt.files.LocalMachineFiles`); it boots through its own
bootloader.

What it must never do: hand out an image that is half-built (built in a scratch folder
renamed into place, under a lock), or one that names a backing file or does not read as
qcow2.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fleet.runtime.libvirt.files import LocalMachineFiles
from fleet.runtime.libvirt.port import ArtifactFailed

from .errors import ProvisioningFailed
from .locks import held
from .paths import FleetPaths

SUITE: Final = "bookworm"
PACKAGES: Final = (
    "systemd", "systemd-sysv", "udev", "openssh-server", "python3", "python3-venv",
    "podman", "uidmap", "slirp4netns", "dbus", "dbus-user-session", "sudo", "cloud-init",
    "linux-image-cloud-amd64", "initramfs-tools", "iproute2", "ca-certificates",
)  # fmt: skip
ROOT_SIZE: Final = "8G"  # the guest's filesystem (sparse: the image holds what is written)
BUILD_TIMEOUT: Final = 3600.0
TOOL_TIMEOUT: Final = 600.0
KERNEL_CMDLINE: Final = "root=/dev/vda rw console=ttyS0 quiet"
APT_SOURCES: Final = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
NETWORK: Final = "[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n"
CLOUD_CFG: Final = (
    "# fleet: the VM pool's seed is the only data source; systemd-networkd has the network;\n"
    "# sshd makes its own host key (fleet-hostkey.conf); only the modules a pool VM needs\n"
    "datasource_list: [ NoCloud, None ]\n"
    "network: {config: disabled}\n"
    "resize_rootfs: false\n"
    "growpart: {mode: 'off'}\n"
    "ssh_deletekeys: false\n"
    "ssh_genkeytypes: []\n"
    "cloud_init_modules: [seed_random, bootcmd, write-files, set_hostname, update_hostname,\n"
    "  update_etc_hosts, users-groups, ssh]\n"
    "cloud_config_modules: [runcmd]\n"
    "cloud_final_modules: [scripts-per-once, scripts-per-boot, scripts-per-instance,\n"
    "  scripts-user, final-message]\n"
)
# Hazard: Debian's ssh.service checks its config (``sshd -t``) before it starts and gives
# up without host keys; the image has none (each VM must make its own), so the check
# is preceded by making an ed25519 key (fast even under emulation, unlike RSA).
SSH_HOSTKEY_DROPIN: Final = (
    "[Service]\n"
    "ExecStartPre=\n"
    "ExecStartPre=/bin/sh -c 'test -s /etc/ssh/ssh_host_ed25519_key || "
    'ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key\'\n'
    "ExecStartPre=/usr/sbin/sshd -t\n"
)
SSHD_CONFIG: Final = "HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\n"
FSTAB: Final = "/dev/vda / ext4 rw,errors=remount-ro 0 1\n"
_RECIPE: Final = "\n".join(
    (SUITE, *PACKAGES, ROOT_SIZE, NETWORK, CLOUD_CFG, SSH_HOSTKEY_DROPIN, SSHD_CONFIG, FSTAB)
)


@dataclass(frozen=True)
class GuestImage:
    """A bootable image: its qcow2 disk, and a kernel and initrd for direct boot (none:
    the disk boots through its own bootloader)."""

    disk: Path
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: str | None = None

    @property
    def virtual_size(self) -> int:
        return int(_image_info(self.disk)["virtual-size"])


def image_key(packages: tuple[str, ...] = PACKAGES) -> str:
    """The cache key of the built image: its package list and recipe, hashed."""
    text = _RECIPE if packages == PACKAGES else _RECIPE + "\n" + "\n".join(packages)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def built_image_dir(paths: FleetPaths) -> Path:
    return paths.cloud_images / f"debian-12-{image_key()}"


def cached_guest_image(paths: FleetPaths) -> GuestImage | None:
    """The built image if it is in the cache (checked: it must read as qcow2)."""
    home = built_image_dir(paths)
    if not (home / "manifest.json").is_file():
        return None
    image = GuestImage(
        disk=home / "disk.qcow2", kernel=home / "vmlinuz", initrd=home / "initrd.img",
        cmdline=KERNEL_CMDLINE,
    )  # fmt: skip
    check_image(image.disk)
    for part in (image.kernel, image.initrd):
        assert part is not None
        if not part.is_file() or part.stat().st_size == 0:
            raise ProvisioningFailed(
                f"guest image {home} lacks {part.name}: delete {home} and run "
                "`fleetctl vm image build`"
            )
    return image


def check_image(disk: Path) -> dict[str, Any]:
    """``qemu-img info`` of a qcow2 ``disk`` that names no backing file, else one line."""
    if not disk.is_file():
        raise ProvisioningFailed(f"guest image {disk} is missing: give an existing qcow2 file")
    try:
        probed = _image_info(disk, fmt=None).get("format")
    except ProvisioningFailed as exc:
        raise _corrupt(disk, exc) from exc
    if probed != "qcow2":
        raise ProvisioningFailed(
            f"guest image {disk} is {probed!r}, not qcow2: convert it with "
            "`qemu-img convert -O qcow2`"
        )
    try:
        info = _image_info(disk, fmt="qcow2")  # read again as qcow2, nothing probed
    except ProvisioningFailed as exc:
        raise _corrupt(disk, exc) from exc
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise ProvisioningFailed(f"guest image {disk} names a backing file: give a standalone one")
    return info


def _corrupt(disk: Path, exc: ProvisioningFailed) -> ProvisioningFailed:
    return ProvisioningFailed(
        f"guest image {disk} is corrupt ({exc}): delete it and build or fetch it again"
    )


def ensure_guest_image(
    paths: FleetPaths, *, say: Callable[[str], None] = lambda _line: None
) -> GuestImage:
    """The built image, built now when the cache lacks it (minutes, once per machine)."""
    found = cached_guest_image(paths)
    if found is not None:
        return found
    return build_guest_image(paths, say=say)


def build_guest_image(
    paths: FleetPaths, *, say: Callable[[str], None] = lambda _line: None
) -> GuestImage:
    """Build the image into the cache (nothing when another build made it meanwhile)."""
    _folder(paths.fleet)
    _folder(paths.cloud_images)
    with held(paths.cloud_images / ".build.lock"):
        found = cached_guest_image(paths)
        if found is not None:
            return found
        for stale in paths.cloud_images.glob(".build-*"):  # a build cut short (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        home = built_image_dir(paths)
        scratch = paths.cloud_images / f".build-{home.name}"
        scratch.mkdir(mode=0o755)
        try:
            started = time.monotonic()
            _build_into(scratch, say=say)
            shutil.rmtree(home, ignore_errors=True)  # a half one, without its manifest
            scratch.rename(home)
            say(f"guest image built in {time.monotonic() - started:.0f} s: {home}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    built = cached_guest_image(paths)
    assert built is not None
    return built


def _build_into(out: Path, *, say: Callable[[str], None]) -> None:
    sources = next((s for s in APT_SOURCES if s.is_file() and s.stat().st_size > 0), None)
    if sources is None:
        raise ProvisioningFailed(
            "no Debian apt sources in /etc/apt (sources.list.d/debian.sources or sources.list): "
            "mmdebstrap builds the guest image from them"
        )
    root = out / "root"
    say(f"building the guest image with mmdebstrap ({SUITE}, {len(PACKAGES)} packages)")
    _tool(
        "mmdebstrap", "--variant=apt", "--mode=root", "--components=main",
        f"--include={','.join(PACKAGES)}", SUITE, str(root), str(sources),
        timeout=BUILD_TIMEOUT,
    )  # fmt: skip
    _customize(root)
    boot = root / "boot"
    [kernel] = boot.glob("vmlinuz-*")
    [initrd] = boot.glob("initrd.img-*")
    shutil.copyfile(kernel, out / "vmlinuz")
    shutil.copyfile(initrd, out / "initrd.img")
    say("making the qcow2 disk (mkfs.ext4 -d, qemu-img convert)")
    raw = out / "root.raw"
    _tool("mkfs.ext4", "-q", "-L", "fleetroot", "-d", str(root), str(raw), ROOT_SIZE)
    shutil.rmtree(root)
    _tool("qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(out / "disk.qcow2"))
    raw.unlink()
    manifest = {
        "suite": SUITE, "packages": list(PACKAGES), "key": image_key(),
        "kernel": kernel.name, "cmdline": KERNEL_CMDLINE,
    }  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    for path in out.iterdir():
        path.chmod(0o644)  # the system libvirtd's qemu user reads them


def _customize(root: Path) -> None:
    """First-boot facts: fstab, DHCP by networkd, cloud-init on NoCloud alone, no host
    keys or machine id shared by every VM (each makes its own on first boot)."""
    (root / "etc/fstab").write_text(FSTAB, encoding="utf-8")
    (root / "etc/systemd/network/10-fleet-dhcp.network").write_text(NETWORK, encoding="utf-8")
    (root / "etc/cloud/cloud.cfg.d/90-fleet.cfg").write_text(CLOUD_CFG, encoding="utf-8")
    (root / "etc/machine-id").write_text("", encoding="ascii")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    (root / "etc/hostname").unlink(missing_ok=True)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # each VM makes its own (SSH_HOSTKEY_DROPIN)
    dropin = root / "etc/systemd/system/ssh.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "fleet-hostkey.conf").write_text(SSH_HOSTKEY_DROPIN, encoding="utf-8")
    (root / "etc/ssh/sshd_config.d/fleet.conf").write_text(SSHD_CONFIG, encoding="utf-8")
    _tool("systemctl", "--root", str(root), "enable", "systemd-networkd.service")
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True)
    for lists in (root / "var/lib/apt/lists").glob("*_Packages"):
        lists.unlink()


def given_image(paths: FleetPaths, source: str) -> GuestImage:
    """A qcow2 cloud image from a path or an http(s) URL, kept in the cache once."""
    _folder(paths.fleet)
    _folder(paths.cloud_images)
    is_url = source.startswith(("http://", "https://"))
    if not is_url:
        local = Path(source)
        if not local.is_absolute():
            local = local.absolute()
        check_image(local)  # a clear line for a missing or corrupt file, before any copy
        source = str(local)
    allowed = () if is_url else (Path(source).parent,)
    files = LocalMachineFiles(paths.cloud_images / "given", artifact_dirs=allowed)
    try:
        disk = files.fetch(source, sha256=None, field="image")
    except ArtifactFailed as exc:
        raise ProvisioningFailed(f"guest image {source}: {exc}") from exc
    check_image(disk)
    return GuestImage(disk=disk)


def _folder(path: Path) -> None:
    try:
        if not path.is_dir():
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
            path.chmod(0o755)
    except OSError as exc:
        raise ProvisioningFailed(
            f"{path} cannot be made ({exc.strerror or exc}): set HARMONY_DATA_DIR to a "
            "writable folder"
        ) from exc


def _image_info(disk: Path, *, fmt: str | None = "qcow2") -> dict[str, Any]:
    pinned = ("-f", fmt) if fmt is not None else ()
    out = _tool("qemu-img", "info", "--output=json", *pinned, str(disk), timeout=60)
    try:
        info = json.loads(out)
    except ValueError as exc:
        raise ProvisioningFailed(f"qemu-img info {disk}: {exc}") from exc
    if not isinstance(info, dict):
        raise ProvisioningFailed(f"qemu-img info {disk}: not an object")
    return info


def _tool(*args: str, timeout: float = TOOL_TIMEOUT) -> str:
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, check=False,
            stdin=subprocess.DEVNULL,  # mmdebstrap reads apt sources from a non-tty stdin
            env={**os.environ, "LC_ALL": "C.UTF-8"},
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise ProvisioningFailed(
            f"{args[0]} is not installed (scripts/system-deps installs it)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise ProvisioningFailed(f"{args[0]} took more than {timeout:.0f}s") from exc
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or [""]
        raise ProvisioningFailed(f"{args[0]} failed: {last[0][-300:]}")
    return done.stdout
