"""``HarmonyFleetPool``: test devices as libvirt VMs, reachable by SSH as ``fleet-admin``.

Why it exists: a test fleet needs machines with their own kernel, systemd, sshd and
podman, made and thrown away by one command (``fleetctl vm create|list|delete``). Each VM
is a domain (direct kernel boot of the cached guest image, :mod:`.image`) whose disk is a
copy-on-write qcow2 volume of the dir pool ``$HARMONY_FLEET_POOL_NAME`` and whose seed
(:mod:`.seed`) is a second volume; user-mode networking forwards a free 127.0.0.1 port
to the guest's sshd (the guest reaches the host's services at 10.0.2.2). ``create`` is
done when ``fleet-admin`` gets in with the fleet key (:mod:`.ssh`); then the domain's
metadata says ``ready``, with its SSH port and labels for the device setup that comes
next.

Crash safety: while one ``create`` runs it holds ``locks/<name>.lock`` (flock, released by
the kernel when the process dies). A domain of the pool that is not ``ready`` and whose
lock nobody holds is what a killed ``create`` left: ``create`` of that name, or
``delete``, removes it with its volumes. A failed ``create`` removes what it made.

What it must never do: touch a domain without the pool's metadata (a name taken by
someone else's domain is an error), bind a forward outside 127.0.0.1, or leave a domain,
volume or console log of a VM it was told to delete.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from fleet.contracts.labels import check_labels
from fleet.contracts.names import check_dns_label
from fleet.errors import ConfigError, ContractError
from fleet.runtime.libvirt.adapter import DEFAULT_URI
from fleet.runtime.libvirt.fleet_vms import LibvirtFleetVms, PoolVm, VmMarks
from fleet.runtime.libvirt.port import DomainFailed, Forward, MachineShape

from . import seed, ssh
from .errors import ProvisioningFailed
from .image import GuestImage
from .keypair import FleetSshKeypair, ensure_fleet_ssh_keypair
from .paths import FleetPaths

DEFAULT_MEMORY_MIB: Final = 1024  # systemd, cloud-init and podman
DEFAULT_VCPUS: Final = 1
DEFAULT_SSH_TIMEOUT: Final = 900.0  # systemd and cloud-init under plain emulation, loaded
START_TRIES: Final = 3  # a free port taken between the probe and qemu's bind: another port
HOST_FROM_GUEST: Final = "10.0.2.2"  # the user-mode network's gateway: the host's 127.0.0.1
DISK_SUFFIX: Final = ".qcow2"
SEED_SUFFIX: Final = "-seed.iso"


def check_vm_name(name: str) -> str:
    """A VM name is a DNS label (it becomes the guest's hostname and the domain's name)."""
    try:
        return check_dns_label(name, what="VM name")
    except ContractError as exc:
        raise ConfigError(str(exc)) from exc


def check_vm_labels(labels: Mapping[str, str]) -> dict[str, str]:
    try:
        check_labels(labels)
    except ContractError as exc:
        raise ConfigError(f"--labels: {exc}") from exc
    return dict(labels)


def check_forwards(pairs: Sequence[tuple[int, int]]) -> tuple[Forward, ...]:
    """(127.0.0.1 port, guest port) pairs: ports in range, neither the guest's SSH nor a
    host port given twice."""
    out = []
    for host, guest in pairs:
        if not (1024 <= host < 65536 and 0 < guest < 65536) or guest == 22:
            raise ConfigError(
                f"--forward {host}:{guest}: the host port must be 1024-65535 and the guest "
                "port 1-65535, not 22 (SSH is forwarded already)"
            )
        out.append(Forward(protocol="tcp", host_port=host, guest_port=guest))
    if len({f.host_port for f in out}) != len(out):
        raise ConfigError("--forward: a host port is given twice")
    return tuple(out)


def guest_url(url: str) -> str:
    """``url`` as a pool VM dials it: 127.0.0.1 and localhost are the host, 10.0.2.2."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    hostport, slash, path = rest.partition("/")
    auth, at, hostport = hostport.rpartition("@")
    has_port = ":" in hostport.rpartition("]")[2]
    host, colon, port = hostport.rpartition(":") if has_port else (hostport, "", "")
    if host in ("127.0.0.1", "localhost", "[::1]"):
        host = HOST_FROM_GUEST
    return f"{scheme}://{auth}{at}{host}{colon}{port}{slash}{path}"


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class CreatedVm:
    name: str
    ssh_port: int
    seconds_to_ssh: float


class HarmonyFleetPool:
    """The VM pool ``paths.pool_name`` of one libvirtd, its folder ``paths.pool_dir``."""

    def __init__(
        self,
        *,
        paths: FleetPaths,
        machines: LibvirtFleetVms,
        keypair: FleetSshKeypair,
        say: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.paths = paths
        self.name = paths.pool_name
        self.machines = machines
        self.keypair = keypair
        self.say = say

    def close(self) -> None:
        self.machines.close()

    # -- create ---------------------------------------------------------------------------

    def create(
        self,
        names: Sequence[str],
        *,
        image: GuestImage,
        labels: Mapping[str, str] | None = None,
        memory_mib: int = DEFAULT_MEMORY_MIB,
        vcpus: int = DEFAULT_VCPUS,
        ssh_timeout: float = DEFAULT_SSH_TIMEOUT,
        forwards: Sequence[tuple[int, int]] = (),
    ) -> list[CreatedVm]:
        """Boot each VM and wait until ``fleet-admin`` gets in by SSH (all in parallel).
        ``forwards``: (127.0.0.1 port, guest port) pairs besides SSH, for one VM only."""
        names = [check_vm_name(n) for n in names]
        if len(set(names)) != len(names):
            raise ConfigError("a VM name is given twice")
        if forwards and len(names) > 1:
            raise ConfigError("--forward needs a single VM (a host port is bound once)")
        extra = check_forwards(forwards)
        marks_labels = check_vm_labels(labels or {})
        password = os.environ.get(seed.PASSWORD_ENV)
        password_hash = seed.hash_password(password) if password else None
        with contextlib.ExitStack() as locks:
            for name in names:
                locks.enter_context(self._lock(name, wait=False))
            for name in names:
                self._refuse_taken(name)
            started: dict[str, tuple[int, float]] = {}
            try:
                for name in names:
                    self._remove_leftovers(name)
                    port = self._make(
                        name, image=image, labels=marks_labels, memory_mib=memory_mib,
                        vcpus=vcpus, password_hash=password_hash, forwards=extra,
                    )  # fmt: skip
                    started[name] = (port, time.monotonic())
                    self.say(f"vm {name}: booting (ssh on 127.0.0.1:{port})")
                created = self._wait_all(
                    started, labels=marks_labels, forwards=extra, timeout=ssh_timeout
                )
            except BaseException:
                for name in names:  # nothing half-made: every VM of this call that is not ready
                    with contextlib.suppress(Exception):
                        vm = self.machines.vm(name, self.name)
                        if vm is None or not vm.ready:
                            self._remove(name)
                raise
        return created

    def _refuse_taken(self, name: str) -> None:
        vm = self.machines.vm(name, self.name)
        if vm is not None and vm.ready:
            raise ProvisioningFailed(
                f"VM name {name} is taken in pool {self.name}: "
                f"`fleetctl vm delete {name}` first, or choose another name"
            )
        if vm is None and self.machines.domain_exists(name):
            raise ProvisioningFailed(
                f"VM name {name} is taken by a libvirt domain fleet did not create: "
                "choose another name"
            )

    def _make(
        self,
        name: str,
        *,
        image: GuestImage,
        labels: dict[str, str],
        memory_mib: int,
        vcpus: int,
        password_hash: str | None,
        forwards: tuple[Forward, ...],
    ) -> int:
        disk = self.machines.create_overlay(
            self.name, name + DISK_SUFFIX, backing=image.disk, capacity=image.virtual_size
        )
        iso = seed.seed_iso(
            hostname=name, public_key=self.keypair.public_key, password_hash=password_hash
        )
        seed_path = self.machines.upload_volume(self.name, name + SEED_SUFFIX, iso)
        console = self._console(name)
        console.unlink(missing_ok=True)
        last: DomainFailed | None = None
        for _try in range(START_TRIES):
            port = free_loopback_port()
            shape = MachineShape(
                name=name, memory_mib=memory_mib, vcpus=vcpus, kernel=image.kernel,
                initrd=image.initrd, cmdline=image.cmdline, disk=disk, seed=seed_path,
                console_log=console,
                forwards=(Forward(protocol="tcp", host_port=port, guest_port=22), *forwards),
            )  # fmt: skip
            marks = VmMarks(
                pool=self.name, ssh_port=port, labels=labels, ready=False, forwards=forwards
            )
            self.machines.define_vm(shape, marks)
            try:
                self.machines.start(name)
            except DomainFailed as exc:
                last = exc  # most likely the port, taken since the probe: try another
                # undefined first: a second definition of the name (a new UUID) is refused
                self.machines.undefine(name)
                continue
            return port
        raise ProvisioningFailed(f"VM {name} did not start: {last}")

    def _wait_all(
        self,
        started: dict[str, tuple[int, float]],
        *,
        labels: dict[str, str],
        forwards: tuple[Forward, ...],
        timeout: float,
    ) -> list[CreatedVm]:
        deadline = time.monotonic() + timeout
        key = self.keypair.private_key
        with concurrent.futures.ThreadPoolExecutor(
            max(1, len(started)), thread_name_prefix="vm-ssh"
        ) as waiters:
            futures = {
                name: waiters.submit(
                    ssh.wait_until_answers, port=port, private_key=key, deadline=deadline
                )
                for name, (port, _t0) in started.items()
            }
            created, failed = [], []
            for name, future in futures.items():
                ok, said = future.result()
                port, t0 = started[name]
                if not ok:
                    failed.append(f"{name} ({said}; console: {self._console(name)})")
                    continue
                marks = VmMarks(
                    pool=self.name, ssh_port=port, labels=labels, ready=True, forwards=forwards
                )
                self.machines.mark(name, marks)
                seconds = time.monotonic() - t0
                self.say(
                    f"vm {name}: ssh fleet-admin@127.0.0.1 -p {port} answers ({seconds:.0f} s)"
                )
                created.append(CreatedVm(name=name, ssh_port=port, seconds_to_ssh=seconds))
        if failed:
            raise ProvisioningFailed(
                f"SSH as {seed.ADMIN_USER} did not answer within {timeout:.0f}s: "
                + ", ".join(failed)
            )
        return created

    # -- list and delete ----------------------------------------------------------------

    def vms(self) -> list[PoolVm]:
        return self.machines.vms(self.name)

    def delete(self, names: Sequence[str]) -> list[str]:
        """Remove each VM with its volumes; the names that were there. A name with
        nothing of the pool's is an error, after the others are done."""
        names = [check_vm_name(n) for n in names]
        removed, missing = [], []
        for name in names:
            with self._lock(name, wait=True):
                try:
                    vm = self.machines.vm(name, self.name)
                    if vm is None and self.machines.domain_exists(name):
                        raise ProvisioningFailed(
                            f"{name} is a libvirt domain fleet did not create: not touched"
                        )
                    if vm is None and not self._volumes_of(name):
                        missing.append(name)
                        continue
                    self._remove(name)
                    removed.append(name)
                finally:
                    self._lock_path(name).unlink(missing_ok=True)  # held: see _lock
        if missing:
            raise ProvisioningFailed(
                f"no VM {', '.join(missing)} in pool {self.name} (`fleetctl vm list`)"
            )
        return removed

    def _volumes_of(self, name: str) -> list[str]:
        mine = {name + DISK_SUFFIX, name + SEED_SUFFIX}
        return [v for v in self.machines.volumes(self.name) if v in mine]

    def _remove_leftovers(self, name: str) -> None:
        vm = self.machines.vm(name, self.name)
        if vm is not None or self._volumes_of(name):
            self.say(f"vm {name}: removing what an interrupted create left")
            self._remove(name)

    def _remove(self, name: str) -> None:
        if self.machines.vm(name, self.name) is not None:
            self.machines.undefine(name)
        for volume in (name + DISK_SUFFIX, name + SEED_SUFFIX):
            self.machines.delete_volume(self.name, volume)
        self._console(name).unlink(missing_ok=True)

    def _console(self, name: str) -> Path:
        return self.paths.fleet / "consoles" / f"{self.name}.{name}.log"

    def _lock_path(self, name: str) -> Path:
        return self.paths.locks / f"{self.name}.{name}.lock"

    @contextlib.contextmanager
    def _lock(self, name: str, *, wait: bool) -> Iterator[None]:
        """Hold ``name``'s flock. ``delete`` unlinks the file while holding it, so a lock
        taken on a file no longer at the path is dropped and taken again on the new one."""
        self.paths.locks.mkdir(mode=0o755, parents=True, exist_ok=True)
        path = self._lock_path(name)
        while True:
            handle: IO[str] = path.open("a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError as exc:
                handle.close()
                raise ProvisioningFailed(
                    f"VM {name} is being created by another fleetctl right now: wait for it"
                ) from exc
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = -1
            if current == os.fstat(handle.fileno()).st_ino:
                break
            handle.close()  # unlinked meanwhile by a delete: lock the new file
        with handle:
            yield


def ensure_harmony_fleet_pool(
    paths: FleetPaths | None = None,
    *,
    uri: str = DEFAULT_URI,
    timeout: float = 60.0,
    say: Callable[[str], None] = lambda _line: None,
) -> HarmonyFleetPool:
    """The pool, defined in libvirt and started, its folder writable, the keypair made."""
    paths = paths or FleetPaths.from_env()
    folder = paths.pool_dir
    try:
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        (paths.fleet / "consoles").mkdir(mode=0o755, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ProvisioningFailed(
            f"pool path {folder} is not writable ({exc.strerror or exc}): set "
            "HARMONY_DATA_DIR to a writable folder"
        ) from exc
    for made in (paths.fleet, paths.fleet / "pools", folder):
        with contextlib.suppress(OSError):
            if made.stat().st_uid == os.geteuid():
                made.chmod(made.stat().st_mode | 0o755)  # the qemu user reads the volumes
    machines = LibvirtFleetVms(uri=uri, timeout=timeout)
    try:
        machines.ensure_pool(paths.pool_name, folder)
        keypair = ensure_fleet_ssh_keypair(paths)
    except BaseException:
        machines.close()
        raise
    return HarmonyFleetPool(paths=paths, machines=machines, keypair=keypair, say=say)
