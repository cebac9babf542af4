"""The kvm runtime's rules over in-memory libvirt and files (the same Protocols the real
adapter implements): the order of a pass (fetch before anything, make before break or
break before make), adopting what runs, health, and artifacts that fail naming the field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from fleet.actors.agent.runtimes.kvm import KvmWorkloads
from fleet.actors.agent.runtimes.port import RetryLater
from fleet.contracts import DeploymentName, DeviceId, KvmScore, Phase
from fleet.runtime.libvirt.port import (
    ArtifactFailed,
    Domain,
    DomainEvent,
    DomainSpec,
    EventStream,
)

DEVICE = DeviceId("pi-01")


class FakeMachines:
    """Domains in memory; ``log`` records every change in order."""

    def __init__(self) -> None:
        self.defined: dict[str, DomainSpec] = {}
        self.running: set[str] = set()
        self.autostart: dict[str, bool] = {}
        self.log: list[str] = []
        self.answering = True
        self.taken_ports: set[int] = set()
        self.free_mib = 4096

    def version(self) -> tuple[str, str]:
        return "libvirt", "9.0.0 (qemu 7.2.22, emulation)"

    def domains(self, device: str) -> list[Domain]:
        return [
            Domain(
                name=name,
                uuid=f"uuid-{name}",
                id=1 if name in self.running else -1,
                state="running" if name in self.running else "shutoff",
                marks=spec.marks,
                autostart=self.autostart.get(name, False),
            )
            for name, spec in self.defined.items()
            if spec.marks.device == device
        ]

    def define(self, spec: DomainSpec) -> None:
        self.defined[spec.name] = spec
        self.log.append(f"define {spec.name[-4:]}")

    def start(self, name: str) -> None:
        self.running.add(name)
        self.log.append(f"start {name[-4:]}")

    def destroy(self, name: str) -> None:
        self.running.discard(name)

    def undefine(self, name: str) -> None:
        self.running.discard(name)
        self.defined.pop(name, None)
        self.log.append(f"undefine {name[-4:]}")

    def set_autostart(self, name: str, *, on: bool) -> None:
        self.autostart[name] = on

    def free_memory_mib(self) -> int:
        return self.free_mib

    def host_port_free(self, port: int, *, protocol: str) -> bool:
        return port not in self.taken_ports

    def answers(self, name: str, *, host_port: int, guest_port: int) -> bool:
        return self.answering and name in self.running

    def events(
        self,
        device: str,
        *,
        on_event: Callable[[DomainEvent], None],
        on_error: Callable[[BaseException], None],
    ) -> EventStream:
        raise NotImplementedError


class FakeFiles:
    def __init__(self) -> None:
        self.cache: dict[str, Path] = {}
        self.homes: set[str] = set()
        self.fail: ArtifactFailed | None = None

    def fetch(self, url: str, *, sha256: str | None, field: str) -> Path:
        if self.fail is not None:
            raise self.fail
        self.cache[url] = Path("/cache") / url.rsplit("/", 1)[-1]
        return self.cache[url]

    def cached(self, url: str, *, sha256: str | None) -> Path | None:
        return self.cache.get(url)

    def prepare(
        self,
        name: str,
        *,
        disk: Path | None,
        user_data: str | None,
        meta_data: str | None,
        uses: tuple[Path, ...] = (),
    ) -> tuple[Path | None, Path | None, Path]:
        self.homes.add(name)
        home = Path("/domains") / name
        seed = None if user_data is None else home / "seed.iso"
        return (None if disk is None else home / "disk.qcow2"), seed, home / "console.log"

    def remove(self, name: str) -> None:
        self.homes.discard(name)

    def names(self, prefix: str) -> list[str]:
        return sorted(n for n in self.homes if n.startswith(prefix))


class Recorder:
    def __init__(self) -> None:
        self.phase: Phase | None = None
        self.backoff = 0.0
        self.phases: list[tuple[Phase, str | None]] = []
        self.broke = 0
        self.later: list[float] = []

    def report(self, phase: Phase, message: str | None = None) -> None:
        self.phases.append((phase, message))
        self.phase = phase

    def breaking(self) -> None:
        self.broke += 1

    def touched(self) -> None:
        return None

    def check_later(self, delay: float, *, reason: str) -> None:
        self.later.append(delay)


def score(port: int = 8080, **extra: Any) -> KvmScore:
    raw = {
        "type": "kvm", "name": "vm", "disk": {"url": "https://images.local/disk.qcow2"},
        "memory_mib": 128, "ports": [{"host_port": port, "guest_port": 80}],
        "health_port": port, **extra,
    }  # fmt: skip
    return msgspec.convert(raw, KvmScore)


def world() -> tuple[FakeMachines, FakeFiles, Any]:
    machines, files = FakeMachines(), FakeFiles()
    runtime = KvmWorkloads(machines=machines, files=files, device_id=DEVICE)
    return machines, files, runtime.workload(DeploymentName("web"))


def run(workload: Any, wanted: KvmScore, revision: int = 1) -> tuple[Recorder, str | None]:
    progress = Recorder()
    found = workload.ensure(
        wanted, revision=revision, observed=workload.observe(), progress=progress
    )
    return progress, found


def test_a_first_pass_fetches_then_defines_and_boots_and_is_running_once_it_answers() -> None:
    machines, _files, workload = world()
    machines.answering = False
    progress = Recorder()
    with pytest.raises(RetryLater):
        workload.ensure(score(), revision=1, observed=workload.observe(), progress=progress)
    assert [p for p, _ in progress.phases] == [Phase.PULLING, Phase.STARTING]
    assert progress.later == [1.0]  # looked at again while the guest boots
    [(name, spec)] = machines.defined.items()
    assert spec.disk is not None
    assert spec.marks.revision == 1
    assert machines.autostart[name] is True
    machines.answering = True
    again, unhealthy = run(workload, score())
    assert unhealthy is None
    assert again.phases == []  # adopted: nothing to say
    assert [u.running for u in workload.observe().units] == [True]


def test_a_changed_spec_boots_the_new_guest_before_removing_the_old() -> None:
    machines, files, workload = world()
    run(workload, score(8080))
    machines.log.clear()
    progress, unhealthy = run(workload, score(8081), revision=2)
    assert unhealthy is None
    assert [entry.split()[0] for entry in machines.log] == ["define", "start", "undefine"]
    assert progress.broke == 1
    [unit] = workload.observe().units
    assert unit.revision == 2
    assert len(files.homes) == 1  # the old overlay went with its domain


def test_a_host_port_still_taken_breaks_before_make() -> None:
    machines, _, workload = world()
    run(workload, score(8080))
    machines.log.clear()
    machines.taken_ports.add(8080)  # the old guest forwards it
    run(workload, score(8080, vcpus=2), revision=2)
    assert [entry.split()[0] for entry in machines.log] == ["undefine", "define", "start"]


def test_too_little_memory_breaks_before_make() -> None:
    machines, _, workload = world()
    run(workload, score(8080))
    machines.log.clear()
    machines.free_mib = 100
    run(workload, score(8081), revision=2)
    assert [entry.split()[0] for entry in machines.log] == ["undefine", "define", "start"]


def test_an_artifact_that_fails_touches_nothing_and_names_the_field() -> None:
    machines, files, workload = world()
    files.fail = ArtifactFailed("disk.sha256: mismatch", field="disk.sha256")
    progress = Recorder()
    with pytest.raises(RetryLater):
        workload.ensure(score(), revision=1, observed=workload.observe(), progress=progress)
    phase, message = progress.phases[-1]
    assert phase is Phase.FAILED
    assert message is not None
    assert "disk.sha256" in message
    assert machines.log == []


def test_a_powered_off_guest_is_booted_again_and_removal_leaves_nothing() -> None:
    machines, files, workload = world()
    run(workload, score())
    [name] = machines.defined
    machines.running.clear()  # virsh destroy
    progress, unhealthy = run(workload, score())
    assert unhealthy is None
    assert progress.phases == [(Phase.STARTING, None)]
    assert name in machines.running
    removing = Recorder()
    assert workload.remove(removing) is True
    assert removing.phases == [(Phase.STOPPING, None)]
    assert machines.defined == {}
    assert files.homes == set()


def test_health_probes_the_tcp_port_not_a_udp_one_on_the_same_host_port() -> None:
    machines, _files, workload = world()
    probed: list[int] = []

    def answers(name: str, *, host_port: int, guest_port: int) -> bool:
        probed.append(guest_port)
        return True

    machines.answers = answers  # type: ignore[method-assign]
    ports = [
        {"host_port": 8080, "guest_port": 53, "protocol": "udp"},
        {"host_port": 8080, "guest_port": 80, "protocol": "tcp"},
    ]
    _progress, unhealthy = run(workload, score(ports=ports))
    assert unhealthy is None
    assert probed
    assert set(probed) == {80}


@pytest.mark.timeout(30)
def test_the_event_pump_backs_off_on_a_lasting_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import libvirt

    from fleet.runtime.libvirt import events

    slept: list[float] = []

    class Stop(Exception):
        pass

    def failing() -> None:
        raise libvirt.libvirtError("broken loop")

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) >= 12:
            raise Stop

    monkeypatch.setattr(libvirt, "virEventRunDefaultImpl", failing)
    monkeypatch.setattr(time, "sleep", sleep)  # events.py calls time.sleep
    with pytest.raises(Stop):
        events._pump()
    assert slept[0] > 0
    assert slept == sorted(slept)
    assert slept[-1] == events.MAX_BACKOFF_S
