"""The files and helper processes behind :mod:`fleet.devtools.podman_sandbox`.

Why it exists: the sandbox module keeps the world's lifecycle; this one writes its
config files, builds the offline busybox image and starts podman's REST service. It
must never write outside the world's own root directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BUSYBOX_APPLETS = ("sh", "sleep", "httpd", "echo", "cat", "true", "mkdir", "wget", "env", "ls")


class PodmanUnusable(Exception):
    """Podman, the registry or busybox cannot run on this machine (the message says why)."""


#: Host ports for containers and the registry come from below Linux's ephemeral range
#: (32768-60999 by default). A port the kernel handed out as ephemeral can be taken by
#: any outgoing connection (the agent's own calls to podman or NATS) the moment its
#: container is removed, and the restored container then fails with "address already
#: in use" for as long as that connection lives: seen in the drift tests.
HOST_PORTS = range(20000, 32768)


def free_port() -> int:
    """A port free on every address, outside the ephemeral range (see HOST_PORTS)."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.choice(HOST_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise PodmanUnusable(f"no free port in {HOST_PORTS.start}-{HOST_PORTS.stop - 1}")


def wait_tcp(port: int, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


def write_configs(
    root: Path, *, registry_port: int, net: int, name: str, auth_registry_port: int = 0
) -> dict[str, str]:
    """Write the world's config files; return the environment that points podman at them."""
    (root / "networks").mkdir()
    (root / "containers.conf").write_text(
        "[containers]\ndefault_ulimits = []\n"
        f'[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\ntmp_dir = "{root}/tmp"\n'
        f'[network]\ndefault_network = "{name}"\nnetwork_config_dir = "{root}/networks"\n'
    )
    # A network of our own: its own bridge and subnet, so the IP allocations of two
    # podman stores on one machine never overlap (podman 4.3 has no --interface-name).
    (root / "networks" / f"{name}.json").write_text(
        json.dumps(
            {
                "name": name,
                "id": secrets.token_hex(32),
                "driver": "bridge",
                "network_interface": name[:15],
                "created": "2026-01-01T00:00:00Z",
                "subnets": [{"subnet": f"10.213.{net}.0/24", "gateway": f"10.213.{net}.1"}],
                "ipv6_enabled": False,
                "internal": False,
                "dns_enabled": False,
                "ipam_options": {"driver": "host-local"},
            }
        )
    )
    (root / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root}/storage"\nrunroot = "{root}/run"\n'
    )
    (root / "registries.conf").write_text(
        "unqualified-search-registries = []\n[[registry]]\n"
        f'location = "127.0.0.1:{registry_port}"\ninsecure = true\n'
        # the registry that needs a password (PodmanEnv.start_auth_registry), if asked
        + (f'[[registry]]\nlocation = "127.0.0.1:{auth_registry_port}"\ninsecure = true\n'
           if auth_registry_port else "")
    )  # fmt: skip
    (root / "registry.yml").write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}/registry\n"
        f"http:\n  addr: 127.0.0.1:{registry_port}\n"
    )
    env = dict(os.environ)
    env.update(
        CONTAINERS_CONF=str(root / "containers.conf"),
        CONTAINERS_STORAGE_CONF=str(root / "storage.conf"),
        CONTAINERS_REGISTRIES_CONF=str(root / "registries.conf"),
    )
    return env


def build_busybox(*, root: Path, podman: Callable[..., Any], image: str) -> None:
    """Import the host's busybox as ``localhost/busybox:test``, push it as ``image``."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise PodmanUnusable("no busybox binary (apt-get install busybox-static)")
    image_root = root / "image"
    for sub in ("bin", "tmp", "www"):
        (image_root / sub).mkdir(parents=True)
    shutil.copy(busybox, image_root / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        (image_root / "bin" / applet).symlink_to("busybox")
    (image_root / "www" / "index.html").write_text("hello from fleet\n")
    tar = root / "busybox.tar"
    subprocess.run(["tar", "-C", str(image_root), "-cf", str(tar), "."], check=True)
    podman("import", "--change", "ENV=PATH=/bin", str(tar), "localhost/busybox:test")
    podman("tag", "localhost/busybox:test", image)
    podman("push", image)


def start_service(*, root: Path, env: dict[str, str], socket_path: Path) -> subprocess.Popen[bytes]:
    """``podman system service`` on ``socket_path``; returns once it accepts connections."""
    log = root / "service.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{socket_path}"],
            env=env,
            stdout=out,
            stderr=out,
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if socket_path.exists():
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(socket_path))
                return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop_process(proc, timeout=5)
    raise PodmanUnusable(f"podman system service did not open {socket_path}; see {log}")


def stop_process(proc: subprocess.Popen[bytes] | None, *, timeout: float) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
