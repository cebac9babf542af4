"""The virtual machine port: what the kvm runtime's rules may ask of libvirt and the disk.

Why it exists: the rules (``fleet/actors/agent/runtimes/kvm.py``) drive virtual machines
through two small Protocols and nothing else, so they can be unit-tested over in-memory
fakes and run against the real libvirtd (:mod:`.adapter`) and the real files
(:mod:`.files`) unchanged:

* :class:`VirtualMachines`: libvirt domains (define, start, destroy, undefine, autostart,
  lifecycle events, whether a forwarded guest port answers);
* :class:`MachineFiles`: artifacts fetched into a cache (checksummed), a copy-on-write
  overlay and a cloud-init seed per domain.

Every method blocks (and is bounded): call them from a reconciler's thread, never from
the event loop. Errors are fleet's: :class:`LibvirtUnavailable` (libvirtd away: retry),
:class:`DomainFailed` (libvirt refused: the message says why), :class:`ArtifactFailed`
(naming the score's field: ``disk.sha256``, ``boot.kernel.url``...).

A domain is the agent's when its name is :func:`domain_name` and its metadata element
(:data:`METADATA_NS`) carries the device, deployment, machine, revision and spec hash
(:class:`MachineMarks`): podman's owner labels, for libvirt. The name alone says the
device and deployment, so an event for a domain already undefined can still be routed.

This module must never import libvirt: it is the port, not the adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal, Protocol

import msgspec

from fleet.errors import PermanentError, TemporaryError

METADATA_NS: Final = "https://fleet.nationtech.io/kvm/v1"
METADATA_PREFIX: Final = "fleet"
NAME_PREFIX: Final = "fleet."
HASH_LENGTH: Final = 12
"""Characters of the spec hash in a domain's name: the old and the new domain of a
replacement live side by side (make before break)."""


class LibvirtUnavailable(TemporaryError):
    """libvirtd cannot be reached, or did not answer in time."""


class DomainFailed(PermanentError):
    """libvirt refused to define, start or change a domain; the message says why."""


class ArtifactFailed(PermanentError):
    """An artifact could not be had. ``field``: the score's field to fix (``disk.sha256``,
    ``boot.kernel.url``); ``temporary``: worth retrying as is (a network error)."""

    def __init__(self, message: str, *, field: str, temporary: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.temporary = temporary


class MachineMarks(msgspec.Struct, frozen=True, kw_only=True):
    """What a domain's metadata element says of it."""

    device: str
    deployment: str
    machine: str  # its name in the score
    revision: int
    spec_hash: str


class Forward(msgspec.Struct, frozen=True, kw_only=True):
    """A user-mode port forward: 127.0.0.1:``host_port`` -> the guest's ``guest_port``."""

    protocol: Literal["tcp", "udp"]
    host_port: int
    guest_port: int


class MachineShape(msgspec.Struct, frozen=True, kw_only=True):
    """A domain's name, size, boot, files and forwards (paths on this host): what both
    the kvm runtime's domains and the VM pool's (``.fleet_vms``) are made of."""

    name: str
    memory_mib: int
    vcpus: int
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: str | None = None
    disk: Path | None = None  # the domain's own overlay
    seed: Path | None = None  # the cloud-init NoCloud ISO
    console_log: Path | None = None
    forwards: tuple[Forward, ...] = ()


class DomainSpec(MachineShape, frozen=True, kw_only=True):
    """Everything the adapter needs to define one of the agent's domains."""

    marks: MachineMarks


DomainState = Literal["running", "paused", "shutoff", "crashed", "other"]


class Domain(msgspec.Struct, frozen=True, kw_only=True):
    """A domain as libvirt reports it."""

    name: str
    uuid: str
    id: int  # libvirt's run id: -1 when off, a new one each start
    state: DomainState
    marks: MachineMarks
    autostart: bool
    persistent: bool = (
        True  # False: undefined by hand while it ran (libvirt forgets it when it stops)
    )

    @property
    def running(self) -> bool:
        return self.state in ("running", "paused")


class DomainEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A lifecycle event of one of this device's domains (``action``: started, stopped,
    undefined, crashed...), routed by its name."""

    name: str
    action: str
    deployment: str | None
    machine: str | None


def domain_name(*, device: str, deployment: str, machine: str, spec_hash: str) -> str:
    """``fleet.<device>.<deployment>.<machine>.<hash>``: a '.' is in none of the parts."""
    return f"{NAME_PREFIX}{device}.{deployment}.{machine}.{spec_hash[:HASH_LENGTH]}"


def device_prefix(device: str) -> str:
    return f"{NAME_PREFIX}{device}."


def parse_name(name: str, device: str) -> tuple[str, str] | None:
    """(deployment, machine) of one of ``device``'s domain names, else None."""
    prefix = device_prefix(device)
    if not name.startswith(prefix):
        return None
    parts = name[len(prefix) :].split(".")
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1]


class EventStream(Protocol):
    def close(self) -> None:
        """Stop the stream; no callback runs after this returns."""


class VirtualMachines(Protocol):
    """What the kvm runtime needs from libvirt."""

    def version(self) -> tuple[str, str]:
        """("libvirt", e.g. "9.0.0 (qemu 7.2.22, emulation)"): says KVM or emulation."""
        ...

    def domains(self, device: str) -> list[Domain]:
        """Every domain of ``device`` (by name and metadata), running or not."""
        ...

    def define(self, spec: DomainSpec) -> None:
        """Define (not start) the domain; raise :class:`DomainFailed`."""
        ...

    def start(self, name: str) -> None:
        """Boot it; raise :class:`DomainFailed` (a host port taken, a file unreadable)."""
        ...

    def destroy(self, name: str) -> None:
        """Power it off at once; absent or off is not an error."""
        ...

    def undefine(self, name: str) -> None:
        """Forget it (destroying it first); absent is not an error."""
        ...

    def set_autostart(self, name: str, *, on: bool) -> None: ...

    def free_memory_mib(self) -> int:
        """Memory the host has free now, in MiB (make before break needs room)."""
        ...

    def host_port_free(self, port: int, *, protocol: str) -> bool:
        """Whether 127.0.0.1:``port`` can be bound now (a forward needs it)."""
        ...

    def answers(self, name: str, *, host_port: int, guest_port: int) -> bool:
        """Whether the guest accepts a TCP connection on ``guest_port`` through the
        forward of 127.0.0.1:``host_port`` (not merely the emulator on the host side)."""
        ...

    def events(
        self,
        device: str,
        *,
        on_event: Callable[[DomainEvent], None],
        on_error: Callable[[BaseException], None],
    ) -> EventStream:
        """Lifecycle events of ``device``'s domains (own thread); ``on_error`` once if
        the stream breaks (the caller opens a new one)."""
        ...


class MachineFiles(Protocol):
    """Artifacts, overlays and seeds on the device's disk."""

    def fetch(self, url: str, *, sha256: str | None, field: str) -> Path:
        """The artifact, fetched (or copied) into the cache once, checked against
        ``sha256`` when given; raise :class:`ArtifactFailed` naming ``field``."""
        ...

    def cached(self, url: str, *, sha256: str | None) -> Path | None:
        """The artifact if the cache has it already (nothing to fetch)."""
        ...

    def prepare(
        self,
        name: str,
        *,
        disk: Path | None,
        user_data: str | None,
        meta_data: str | None,
        uses: tuple[Path, ...] = (),
    ) -> tuple[Path | None, Path | None, Path]:
        """Domain ``name``'s own files: (its overlay over ``disk``, its cloud-init seed,
        its console log path); made anew each time (a crashed try leaves nothing).
        ``uses``: the cached artifacts the domain boots from (kept while it exists)."""
        ...

    def remove(self, name: str) -> None:
        """Delete domain ``name``'s files (absent is not an error), and cached artifacts
        no domain uses any more (a bounded sweep)."""
        ...

    def names(self, prefix: str) -> list[str]:
        """Domains that have files here, whose name starts with ``prefix``."""
        ...
