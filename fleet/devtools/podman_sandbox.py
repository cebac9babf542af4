"""A private podman world: own storage, own network, a local registry, an offline busybox image.

Why it exists: the agent's integration tests, the benchmarks and the local demo
(``scripts/demo``) all drive real containers on a machine with no internet and a podman
that only works with a few settings in some sandboxes (runc, cgroupfs, no default
ulimits: crun fails there on setrlimit and hybrid cgroups). Everything podman writes
lives under one temp dir (its own containers.conf, storage.conf, registries.conf and a
network with its own bridge and subnet), so the machine's own containers, images and
networks are never seen or touched, and two worlds on one machine do not collide. The
image is built from the host's ``busybox`` binary with ``podman import`` and pushed to a
real ``docker-registry`` on 127.0.0.1, so pulls are real pulls.

What it must never do: run a destructive podman command (``rm``, ``rmi``) unless ``podman
info`` confirms it is pointed at the private storage, or leave a process, a container or
a mount behind after :func:`podman_world` exits. It is a development stand-in: nothing
shipped to a device imports it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ._podman_files import (
    PodmanUnusable,
    build_busybox,
    free_port,
    start_service,
    stop_process,
    wait_tcp,
    write_configs,
)

__all__ = [
    "SESSION_LABEL",
    "PodmanCommandFailed",
    "PodmanEnv",
    "PodmanUnusable",
    "free_port",
    "podman_world",
]

SESSION_LABEL = "fleet.test/session"  # put on containers created by hand (tests)


class PodmanCommandFailed(RuntimeError):
    """A podman CLI call against the private storage failed (the message has stderr)."""


@dataclass
class PodmanEnv:
    """A private podman world: config files, storage, registry and REST socket."""

    root: Path
    env: dict[str, str]
    socket_path: Path
    registry_port: int
    session_label: str
    registry_proc: subprocess.Popen[bytes] | None = None
    auth_registry_port: int = 0  # a second registry, with htpasswd auth, when started
    auth_registry_proc: subprocess.Popen[bytes] | None = None
    service_proc: subprocess.Popen[bytes] | None = None
    _tags: list[str] = field(default_factory=list)

    @property
    def socket_url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def registry(self) -> str:
        return f"127.0.0.1:{self.registry_port}"

    @property
    def image(self) -> str:
        """The busybox image as pulled from the local registry."""
        return f"{self.registry}/busybox:test"

    def podman(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the podman CLI against the private storage."""
        proc = subprocess.run(
            ["podman", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise PodmanCommandFailed(f"podman {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    # -- registry ------------------------------------------------------------------
    def start_registry(self) -> None:
        if self.registry_proc is not None and self.registry_proc.poll() is None:
            return
        config = self.root / "registry.yml"
        with (self.root / "registry.log").open("ab") as log:
            self.registry_proc = subprocess.Popen(
                ["docker-registry", "serve", str(config)], stdout=log, stderr=log, env=self.env
            )
        wait_tcp(self.registry_port, timeout=10, what="docker-registry")

    def start_auth_registry(self, htpasswd: Path) -> str:
        """Start the second registry, which needs a user of ``htpasswd`` (bcrypt); its
        address. Stopped with the world (or by :meth:`stop_auth_registry`)."""
        if self.auth_registry_proc is None or self.auth_registry_proc.poll() is not None:
            config = self.root / "registry-auth.yml"
            config.write_text(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                f"storage:\n  filesystem:\n    rootdirectory: {self.root}/registry-auth\n"
                f"http:\n  addr: 127.0.0.1:{self.auth_registry_port}\n"
                f"auth:\n  htpasswd:\n    realm: fleet-test\n    path: {htpasswd}\n"
            )
            with (self.root / "registry-auth.log").open("ab") as log:
                self.auth_registry_proc = subprocess.Popen(
                    ["docker-registry", "serve", str(config)], stdout=log, stderr=log,
                    env=self.env,
                )  # fmt: skip
            wait_tcp(self.auth_registry_port, timeout=10, what="docker-registry (auth)")
        return f"127.0.0.1:{self.auth_registry_port}"

    def stop_auth_registry(self) -> None:
        proc, self.auth_registry_proc = self.auth_registry_proc, None
        stop_process(proc, timeout=5)

    def stop_registry(self) -> None:
        proc, self.registry_proc = self.registry_proc, None
        stop_process(proc, timeout=5)

    def push_tag(self, tag: str) -> str:
        """Push the busybox image under a new tag that is not in local storage; return it."""
        ref = f"{self.registry}/busybox:{tag}"
        self.podman("tag", "localhost/busybox:test", ref)
        self.podman("push", ref)
        self.podman("rmi", ref)
        self._tags.append(ref)
        return ref

    def remove_image(self, ref: str) -> None:
        self.podman("rmi", "-f", ref, check=False)

    # -- containers ----------------------------------------------------------------
    def assert_private(self) -> None:
        info = json.loads(self.podman("info", "--format", "json").stdout)
        graph_root = info["store"]["graphRoot"]
        if not graph_root.startswith(str(self.root)):
            raise PodmanCommandFailed(
                f"podman storage {graph_root} is not this world's {self.root}"
            )

    def containers(self, *, all_: bool = True) -> list[dict[str, object]]:
        args = ["ps", "--format", "json"] + (["-a"] if all_ else [])
        out: list[dict[str, object]] = json.loads(self.podman(*args).stdout or "[]")
        return out

    def remove_all_containers(self) -> None:
        self.assert_private()
        self.podman("rm", "-a", "-f", "-t", "0", check=False)


@contextlib.contextmanager
def podman_world(*, prefix: str = "fleet-podman-") -> Iterator[PodmanEnv]:
    """Bring up the private podman world; tear it all down on exit.

    Raises :class:`PodmanUnusable` (saying why) when podman, the registry or busybox
    cannot run on this machine.
    """
    if shutil.which("podman") is None or shutil.which("docker-registry") is None:
        raise PodmanUnusable(
            "podman or docker-registry not installed "
            "(apt-get install podman runc docker-registry busybox-static)"
        )
    root = Path(tempfile.mkdtemp(prefix=prefix))
    session = secrets.token_hex(3)
    registry_port, auth_registry_port = free_port(), free_port()
    env = PodmanEnv(
        root=root,
        env=write_configs(
            root,
            registry_port=registry_port,
            auth_registry_port=auth_registry_port,
            net=secrets.randbelow(250) + 1,
            name=f"flt{session}",
        ),
        socket_path=root / "podman.sock",
        registry_port=registry_port,
        auth_registry_port=auth_registry_port,
        session_label=f"{SESSION_LABEL}={session}",
    )
    try:
        try:
            env.start_registry()
            build_busybox(root=root, podman=env.podman, image=env.image)
            env.assert_private()
            probe = env.podman("run", "--rm", env.image, "true", check=False)
            if probe.returncode != 0:
                raise PodmanUnusable(f"podman run failed: {probe.stderr.strip()}")
            env.service_proc = start_service(root=root, env=env.env, socket_path=env.socket_path)
        except (PodmanCommandFailed, OSError, TimeoutError) as exc:
            raise PodmanUnusable(str(exc)) from exc
        yield env
    finally:
        stop_process(env.service_proc, timeout=10)
        with contextlib.suppress(Exception):
            env.remove_all_containers()
            env.podman("rmi", "-a", "-f", check=False)
        env.stop_registry()
        env.stop_auth_registry()
        subprocess.run(
            ["umount", "-R", str(root / "storage" / "overlay")], capture_output=True, check=False
        )
        shutil.rmtree(root, ignore_errors=True)
