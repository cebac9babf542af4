"""The kvm runtime: a deployment's virtual machine, behind the runtime port.

Why it exists: it is the ``"kvm"`` implementation of :class:`~.port.WorkloadRuntime`. It
speaks to libvirt only through :class:`~fleet.runtime.libvirt.port.VirtualMachines` and to
the disk through :class:`~fleet.runtime.libvirt.port.MachineFiles`. A pass
(:meth:`KvmWorkload.ensure`) goes in this order:

1. the domain made from this spec (its name ends in the spec's hash) exists: adopt it,
   booting it again if it was powered off by hand;
2. otherwise fetch every artifact (``Pulling``; a checksum mismatch is ``Failed`` naming
   ``disk.sha256``/``boot.kernel.sha256``...), make its overlay and seed, define and boot it
   (``Starting``), next to the old domain when the host has the memory and no host port
   is forwarded by both (make before break), else after removing the old one (break
   before make, logged);
3. when ``health_port`` is given, wait (``Starting``, looked at again every second) until
   the guest answers on it; only then is the old domain removed and the pass ``Running``;
4. delete files of this deployment's domains that no longer exist (a crash mid-pass).

A domain is the deployment's when its name and metadata say this device and deployment
(:class:`~fleet.runtime.libvirt.port.MachineMarks`), checked again here. Drift (a domain
powered off or undefined by hand) comes as libvirt lifecycle events and is repaired by
the next pass; autostart follows the score's ``autostart``.

What it must never do: touch a domain without this device's marks, remove the old domain
before the new one answers when it could keep it, or loop inside a pass (a retry is
:class:`~.port.RetryLater`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import NoReturn

import msgspec

from fleet.contracts import Artifact, DeploymentName, DeviceId, KvmScore, Phase, ReconcileScore
from fleet.errors import PermanentError
from fleet.runtime.libvirt.port import (
    ArtifactFailed,
    Domain,
    DomainEvent,
    DomainFailed,
    DomainSpec,
    Forward,
    MachineFiles,
    MachineMarks,
    VirtualMachines,
    domain_name,
    parse_name,
)

from .port import DriftEvent, EventStream, Observed, Progress, RetryLater, Unit

logger = logging.getLogger(__name__)

SCORE_TYPE = "kvm"
HEALTH_TIMEOUT = 300.0  # a guest that never answers on its health port is Failed after this
MEMORY_MARGIN_MIB = 64  # make before break needs the new guest's memory and this to spare


def spec_hash(score: KvmScore) -> str:
    """The hash of everything that shapes the domain (the canonical encoding)."""
    return hashlib.sha256(msgspec.json.encode(score)).hexdigest()


class KvmWorkloads:
    """The device-wide half: one per device, over one libvirtd and one file cache."""

    score_type = SCORE_TYPE

    def __init__(
        self,
        *,
        machines: VirtualMachines,
        files: MachineFiles,
        device_id: DeviceId,
        max_backoff: float = 30.0,
        health_timeout: float = HEALTH_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.machines = machines
        self.files = files
        self._device = device_id
        self._max_backoff = max_backoff
        self._health_timeout = health_timeout
        self._clock = clock

    def version(self) -> tuple[str, str]:
        return self.machines.version()

    def workload(self, deployment: DeploymentName) -> KvmWorkload:
        return KvmWorkload(
            machines=self.machines, files=self.files, device_id=self._device,
            deployment=deployment, max_backoff=self._max_backoff,
            health_timeout=self._health_timeout, clock=self._clock,
        )  # fmt: skip

    def deployments(self) -> Mapping[str, int]:
        found: dict[str, int] = {}
        for domain in self.machines.domains(self._device):
            deployment = domain.marks.deployment
            found[deployment] = max(found.get(deployment, 0), domain.marks.revision)
        return found

    def drift_events(
        self, *, on_drift: Callable[[DriftEvent], None], on_error: Callable[[BaseException], None]
    ) -> EventStream:
        def changed(event: DomainEvent) -> None:
            on_drift(DriftEvent(deployment=event.deployment, unit=event.machine))

        return self.machines.events(self._device, on_event=changed, on_error=on_error)


class KvmWorkload:
    """One deployment's virtual machine (see the module doc for a pass)."""

    def __init__(
        self,
        *,
        machines: VirtualMachines,
        files: MachineFiles,
        device_id: DeviceId,
        deployment: DeploymentName,
        max_backoff: float,
        health_timeout: float,
        clock: Callable[[], float],
    ) -> None:
        self._machines = machines
        self._files = files
        self._device = device_id
        self._deployment = deployment
        self._max_backoff = max_backoff
        self._health_timeout = health_timeout
        self._clock = clock
        self._booted: dict[str, float] = {}  # domain -> when this agent booted it

    def observe(self) -> Observed:
        owned = [
            d
            for d in self._machines.domains(self._device)
            if d.marks.device == self._device
            and d.marks.deployment == self._deployment
            and parse_name(d.name, self._device) == (self._deployment, d.marks.machine)
        ]
        units = tuple(
            Unit(name=d.marks.machine, id=d.uuid, running=d.running, revision=d.marks.revision)
            for d in owned
        )
        revision = max((d.marks.revision for d in owned), default=None)
        return Observed(units=units, revision=revision, found=owned)

    def exited(self, exits: Iterable[tuple[str, int]]) -> None:
        return None  # a guest has no exit code: a powered-off guest is booted again

    def remove(self, progress: Progress) -> bool:
        owned = self._owned(self.observe())
        if owned:
            progress.report(Phase.STOPPING)
            for domain in owned:
                self._remove(domain.name)
        self._sweep(keep=())
        return bool(owned)

    def ensure(
        self, score: ReconcileScore, *, revision: int, observed: Observed, progress: Progress
    ) -> str | None:
        if not isinstance(score, KvmScore):  # the registry routes by type: a bug
            raise PermanentError(f"the kvm runtime was given a {type(score).__name__}")
        owned = self._owned(observed)
        digest = spec_hash(score)
        name = domain_name(
            device=self._device, deployment=self._deployment, machine=score.name,
            spec_hash=digest,
        )  # fmt: skip
        current = next((d for d in owned if d.name == name), None)
        old = [d for d in owned if d.name != name]
        if current is not None and not current.persistent:  # undefined by hand as it ran
            progress.touched()
            self._remove_old([current], progress)  # made anew below: a fresh definition
            current = None
        if current is None:
            paths = self._fetch(score, progress)  # 2. every artifact before anything else
            progress.report(Phase.STARTING)
            progress.touched()
            if old and not self._room(score, old):
                logger.info(
                    "%s/%s: break before make (no room for two guests, or a host port "
                    "forwarded by both)", self._device, self._deployment,
                )  # fmt: skip
                self._remove_old(old, progress)
                old = []
            marks = MachineMarks(
                device=self._device, deployment=self._deployment, machine=score.name,
                revision=revision, spec_hash=digest,
            )  # fmt: skip
            self._create(name, score, marks, paths, progress)
        elif not current.running:  # 1. powered off by hand (or by the guest): boot again
            progress.report(Phase.STARTING)
            progress.touched()
            if current.state == "crashed":
                self._machines.destroy(name)
            self._boot(name, score, progress)
        elif current.autostart != score.autostart:
            self._machines.set_autostart(name, on=score.autostart)
        self._wait_healthy(name, score, progress)  # 3.
        if old:
            self._remove_old(old, progress)
        self._sweep(keep=(name,))  # 4.
        return None

    # -- the steps -----------------------------------------------------------------------

    @staticmethod
    def _owned(observed: Observed) -> list[Domain]:
        found = observed.found
        if not isinstance(found, list):  # observed by another runtime: a bug
            raise PermanentError("the kvm runtime was given another runtime's observation")
        return found

    def _fetch(self, score: KvmScore, progress: Progress) -> dict[str, Path]:
        wanted: dict[str, Artifact] = {}
        if score.disk is not None:
            wanted["disk"] = score.disk
        if score.boot is not None:
            wanted["boot.kernel"] = score.boot.kernel
            if score.boot.initrd is not None:
                wanted["boot.initrd"] = score.boot.initrd
        paths: dict[str, Path] = {}
        for field, artifact in wanted.items():
            cached = self._files.cached(artifact.url, sha256=artifact.sha256)
            if cached is not None:
                paths[field] = cached
                continue
            if progress.phase is not Phase.PULLING:
                progress.report(Phase.PULLING, f"fetching {artifact.url}")
            try:
                paths[field] = self._files.fetch(artifact.url, sha256=artifact.sha256, field=field)
            except ArtifactFailed as exc:
                delay = min(self._max_backoff, max(1.0, progress.backoff * 2))
                if exc.temporary:
                    progress.report(Phase.PULLING, f"{exc}; retrying in {delay:.0f}s")
                else:
                    progress.report(Phase.FAILED, f"{exc}; retrying in {delay:.0f}s")
                raise RetryLater from exc
        return paths

    def _room(self, score: KvmScore, old: list[Domain]) -> bool:
        """Whether the new guest can run beside the old ones (make before break)."""
        # The old domains' forwards are not in their marks: their names carry the hash
        # only. A port the new score forwards may be held by an old guest, so make
        # before break needs every new host port free on the host now.
        for port in score.ports or ():
            if not self._machines.host_port_free(port.host_port, protocol=port.protocol):
                return False
        return self._machines.free_memory_mib() >= score.memory_mib + MEMORY_MARGIN_MIB

    def _create(
        self,
        name: str,
        score: KvmScore,
        marks: MachineMarks,
        paths: dict[str, Path],
        progress: Progress,
    ) -> None:
        cloud = score.cloud_init
        try:
            overlay, seed, console = self._files.prepare(
                name, disk=paths.get("disk"),
                user_data=None if cloud is None else cloud.user_data,
                meta_data=None if cloud is None else cloud.meta_data,
                uses=tuple(paths.values()),
            )  # fmt: skip
        except OSError as exc:
            _start_failed(progress, score, f"its files could not be made: {exc}", exc)
        spec = DomainSpec(
            name=name, marks=marks, memory_mib=score.memory_mib, vcpus=score.vcpus,
            kernel=paths.get("boot.kernel"), initrd=paths.get("boot.initrd"),
            cmdline=None if score.boot is None else score.boot.cmdline,
            disk=overlay, seed=seed, console_log=console,
            forwards=tuple(
                Forward(protocol=p.protocol, host_port=p.host_port, guest_port=p.guest_port)
                for p in score.ports or ()
            ),
        )  # fmt: skip
        try:
            self._machines.define(spec)
            self._machines.set_autostart(name, on=score.autostart)
        except DomainFailed as exc:
            self._remove(name)
            _start_failed(progress, score, str(exc), exc)
        self._boot(name, score, progress)

    def _boot(self, name: str, score: KvmScore, progress: Progress) -> None:
        try:
            self._machines.start(name)
        except DomainFailed as exc:
            _start_failed(progress, score, str(exc), exc)
        self._booted[name] = self._clock()

    def _wait_healthy(self, name: str, score: KvmScore, progress: Progress) -> None:
        port = score.health_port
        if port is None:
            return
        guest = next(
            p.guest_port
            for p in score.ports or ()
            if p.host_port == port and p.protocol == "tcp"  # the contract ensures one
        )
        if self._machines.answers(name, host_port=port, guest_port=guest):
            self._booted.pop(name, None)
            return
        booted = self._booted.setdefault(name, self._clock())
        waited = self._clock() - booted
        if waited > self._health_timeout:
            progress.report(
                Phase.FAILED,
                f"machine {score.name!r} does not answer on health_port {port} "
                f"(guest port {guest}) after {waited:.0f}s",
            )
        elif progress.phase is not Phase.STARTING:
            progress.report(Phase.STARTING)
        progress.check_later(1.0, reason="settle")
        raise RetryLater

    def _remove_old(self, old: list[Domain], progress: Progress) -> None:
        for domain in old:
            if domain.running:
                progress.breaking()
            progress.touched()
            self._remove(domain.name)

    def _remove(self, name: str) -> None:
        self._machines.undefine(name)
        self._files.remove(name)
        self._booted.pop(name, None)

    def _sweep(self, *, keep: Iterable[str]) -> None:
        """Delete the files of this deployment's domains that are gone."""
        prefix = domain_name(
            device=self._device, deployment=self._deployment, machine="", spec_hash=""
        )[:-1]  # "fleet.<device>.<deployment>."
        live = {d.name for d in self._machines.domains(self._device)} | set(keep)
        for name in self._files.names(prefix):
            if name not in live:
                self._files.remove(name)


def _start_failed(progress: Progress, score: KvmScore, why: str, exc: Exception) -> NoReturn:
    progress.report(Phase.FAILED, f"machine {score.name!r} did not start: {why}")
    raise RetryLater from exc
