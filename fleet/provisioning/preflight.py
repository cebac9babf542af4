"""The smoke preflight of the VM pool, per architecture: one line per check.

Why it exists: a VM that cannot start fails late and obscurely (a qemu binary missing,
libvirtd away, a cache folder the qemu user cannot read).
:func:`check_fleet_smoke_preflight_for_arch` checks each condition first and says, for
each one that fails, what to do. It also says whether guests run with KVM or in plain
emulation (TCG), and why.

What it must never do: change the machine (it only looks), or pass a check it could not
make.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fleet.runtime.libvirt.fleet_vms import LibvirtFleetVms
from fleet.runtime.libvirt.port import LibvirtUnavailable

from .paths import FleetPaths

ARCH_ALIASES: Final = {"x86_64": "x86_64", "amd64": "x86_64"}
QEMU_PACKAGES: Final = {"x86_64": "qemu-system-x86"}
TOOLS: Final = (
    ("qemu-img", "qemu-utils"),
    ("genisoimage", "genisoimage"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
    ("openssl", "openssl"),
)
BUILD_TOOLS: Final = (("mmdebstrap", "mmdebstrap"), ("mkfs.ext4", "e2fsprogs"))
KVM_DEVICE: Final = Path("/dev/kvm")


@dataclass(frozen=True)
class PreflightCheck:
    """One check: its name, whether it passed, what was found, what to do if not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        tail = "" if self.ok or not self.fix else f" -> {self.fix}"
        return f"{mark} {self.name}: {self.detail}{tail}"


@dataclass(frozen=True)
class Preflight:
    arch: str
    checks: tuple[PreflightCheck, ...]
    accelerator: str  # "kvm", "emulation" or "unknown"

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def first_failure(self) -> PreflightCheck | None:
        return next((c for c in self.checks if not c.ok), None)


def check_fleet_smoke_preflight_for_arch(
    arch: str | None = None,
    *,
    paths: FleetPaths | None = None,
    uri: str = "qemu:///system",
    timeout: float = 30.0,
    need_build_tools: bool = False,
) -> Preflight:
    """Every check for guests of ``arch`` (default: this host's) against ``uri``."""
    paths = paths or FleetPaths.from_env()
    asked = arch or platform.machine()
    guest_arch = ARCH_ALIASES.get(asked)
    checks: list[PreflightCheck] = []
    if guest_arch is None:
        checks.append(
            PreflightCheck(
                "architecture",
                False,
                f"{asked} guests are not supported",
                "use x86_64 (amd64): the only guest image fleet builds today",
            )
        )
        return Preflight(arch=asked, checks=tuple(checks), accelerator="unknown")
    checks.append(PreflightCheck("architecture", True, f"{guest_arch} guests"))
    qemu = f"qemu-system-{guest_arch}"
    found = shutil.which(qemu)
    checks.append(
        PreflightCheck(
            "qemu",
            found is not None,
            found or f"{qemu} not found",
            f"apt-get install {QEMU_PACKAGES[guest_arch]}",
        )
    )
    tools = TOOLS + (BUILD_TOOLS if need_build_tools else ())
    for tool, package in tools:
        where = shutil.which(tool)
        checks.append(
            PreflightCheck(
                tool, where is not None, where or "not found", f"apt-get install {package}"
            )
        )
    checks.append(_libvirtd(uri, timeout=timeout))
    accelerator, line = _accelerator(host_arch=platform.machine(), guest_arch=guest_arch)
    checks.append(line)
    checks.append(_cache_reachable(paths))
    return Preflight(arch=guest_arch, checks=tuple(checks), accelerator=accelerator)


def _libvirtd(uri: str, *, timeout: float) -> PreflightCheck:
    machines = LibvirtFleetVms(uri=uri, timeout=timeout)
    try:
        _lib, version = machines.version()
    except LibvirtUnavailable as exc:
        return PreflightCheck(
            "libvirtd",
            False,
            f"{uri} is not reachable ({_short(exc)})",
            "start it: `virtlogd -d && libvirtd -d` as root (or systemctl start libvirtd)",
        )
    finally:
        machines.close()
    return PreflightCheck("libvirtd", True, f"{uri}: libvirt {version}")


def _accelerator(*, host_arch: str, guest_arch: str) -> tuple[str, PreflightCheck]:
    if ARCH_ALIASES.get(host_arch) != guest_arch:
        why = f"a {guest_arch} guest on a {host_arch} host"
        return "emulation", PreflightCheck("accelerator", True, f"plain emulation (TCG): {why}")
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        flags = ""
    has_flag = re.search(r"\b(vmx|svm)\b", flags) is not None
    device_ok = KVM_DEVICE.exists() and stat.S_ISCHR(KVM_DEVICE.stat().st_mode)
    if has_flag and device_ok and os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        return "kvm", PreflightCheck(
            "accelerator", True, "KVM (the CPU has vmx/svm, /dev/kvm opens)"
        )
    why = "the CPU lacks vmx/svm" if not has_flag else f"{KVM_DEVICE} is not usable"
    return "emulation", PreflightCheck("accelerator", True, f"plain emulation (TCG), slower: {why}")


def _cache_reachable(paths: FleetPaths) -> PreflightCheck:
    """The system libvirtd's qemu user must traverse to the cache (``/root`` is 0700)."""
    folder = paths.fleet
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    closed = [p for p in (probe, *probe.parents) if p.is_dir() and not p.stat().st_mode & 0o001]
    if closed:
        return PreflightCheck(
            "cache",
            False,
            f"{closed[0]} is closed to other users, so qemu cannot read {folder}",
            f"set HARMONY_DATA_DIR to a folder others may traverse (e.g. /var/lib/harmony), "
            f"or chmod o+x {closed[0]}",
        )
    if probe.is_dir() and not os.access(probe, os.W_OK):
        return PreflightCheck(
            "cache",
            False,
            f"{probe} is not writable",
            "set HARMONY_DATA_DIR to a writable folder",
        )
    if not probe.is_dir():
        return PreflightCheck(
            "cache",
            False,
            f"{probe} is not a folder, so {folder} is not writable",
            "set HARMONY_DATA_DIR to a writable folder",
        )
    return PreflightCheck("cache", True, str(folder))


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
