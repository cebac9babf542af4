"""What the device is, read from the machine: hostname, arch, OS, kernel, CPUs, memory.

Why it exists: the agent publishes it in its ``DeviceInfo`` so operators can see (and
later select on) what each device has. The container runtime's name and version come
from the runtime port, not from here.

What it must never do: fail the agent because one fact cannot be read (it says
"unknown" instead).
"""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

from fleet.contracts import Inventory


def _os_name(os_release: Path) -> str:
    try:
        for line in os_release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system() or "unknown"


def _memory_bytes(meminfo: Path) -> int:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return 0


def read_inventory(
    *,
    runtime_name: str,
    runtime_version: str,
    os_release: Path = Path("/etc/os-release"),
    meminfo: Path = Path("/proc/meminfo"),
) -> Inventory:
    """This machine's inventory, with the container runtime's name and version."""
    return Inventory(
        hostname=socket.gethostname() or "unknown",
        arch=platform.machine() or "unknown",
        os=_os_name(os_release),
        kernel=platform.release() or "unknown",
        cpus=os.cpu_count() or 1,
        memory_bytes=_memory_bytes(meminfo),
        runtime_name=runtime_name,
        runtime_version=runtime_version,
    )
