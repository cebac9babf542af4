"""The runtime port without servers: routing by score type, a type with no runtime here,
and a runtime other than podman's plugging into the reconciler through the port alone."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec
import pytest

from fleet.actors.agent.config import AgentConfig
from fleet.actors.agent.desired import DesiredBook
from fleet.actors.agent.device import DeviceActor
from fleet.actors.agent.messages import Apply, Remove
from fleet.actors.agent.reconciler import DeploymentReconciler
from fleet.actors.agent.runtimes.podman import PodmanWorkloads
from fleet.actors.agent.runtimes.port import (
    DriftEvent,
    EventStream,
    Observed,
    Progress,
    Unit,
)
from fleet.actors.agent.runtimes.registry import RuntimeRegistry, score_type
from fleet.contracts import (
    BUCKET_DEVICE_INFO,
    ContainerSpec,
    DeploymentName,
    DeploymentState,
    DeviceId,
    Phase,
    PodmanScore,
    ReconcileScore,
    decode_info,
)
from fleet.runtime.host.desired_store import DesiredStore
from tests.agent.fakes import FakeRuntime, FakeTimers

WEB = DeploymentName("web")
DEVICE = DeviceId("dev1")
GOOD = msgspec.json.encode({"type": "podman", "containers": [{"name": "web", "image": "busybox"}]})
SCORE = PodmanScore(containers=[ContainerSpec(name="web", image="busybox")])


class _Closed:
    def close(self) -> None:
        return None


class MemoryWorkloads:
    """A runtime that is not podman's: units in a dict, every call written down."""

    def __init__(self, kind: str = "podman") -> None:
        self.score_type = kind
        self.units: dict[str, Unit] = {}
        self.calls: list[str] = []

    def version(self) -> tuple[str, str]:
        return ("memory", "1")

    def workload(self, deployment: DeploymentName) -> MemoryWorkload:
        return MemoryWorkload(self, deployment)

    def deployments(self) -> Mapping[str, int]:
        return {name: unit.revision or 0 for name, unit in self.units.items()}

    def drift_events(
        self, *, on_drift: Callable[[DriftEvent], None], on_error: Callable[[BaseException], None]
    ) -> EventStream:
        return _Closed()


class MemoryWorkload:
    def __init__(self, runtime: MemoryWorkloads, deployment: str) -> None:
        self._runtime = runtime
        self._deployment = deployment

    def observe(self) -> Observed:
        unit = self._runtime.units.get(self._deployment)
        units = () if unit is None else (unit,)
        return Observed(units=units, revision=unit.revision if unit else None)

    def ensure(
        self, score: ReconcileScore, *, revision: int, observed: Observed, progress: Progress
    ) -> str | None:
        self._runtime.calls.append(f"ensure {self._deployment} {revision}")
        if not observed.present:
            progress.report(Phase.STARTING)
            progress.touched()
            self._runtime.units[self._deployment] = Unit(
                name="web", id=f"u{revision}", running=True, revision=revision
            )
        return None

    def remove(self, progress: Progress) -> bool:
        self._runtime.calls.append(f"remove {self._deployment}")
        if self._runtime.units.pop(self._deployment, None) is None:
            return False
        progress.report(Phase.STOPPING)
        return True

    def exited(self, exits: Iterable[tuple[str, int]]) -> None:
        return None


@pytest.fixture
def reports() -> list[DeploymentState]:
    return []


def start(runtimes: RuntimeRegistry, reports: list[DeploymentState]) -> Any:
    return DeploymentReconciler.start(
        device_id=DEVICE, deployment=WEB, report=reports.append, timers=FakeTimers(),
        runtimes=runtimes,
    )  # fmt: skip


@pytest.fixture
def memory(reports: list[DeploymentState]) -> Iterator[tuple[MemoryWorkloads, Any]]:
    runtime = MemoryWorkloads()
    ref = start(RuntimeRegistry([runtime]), reports)
    yield runtime, ref
    ref.stop()


def test_a_runtime_other_than_podmans_plugs_in_through_the_port(
    memory: tuple[MemoryWorkloads, Any], reports: list[DeploymentState]
) -> None:
    runtime, ref = memory
    ref.ask(Apply(revision=3, score=SCORE), timeout=5)
    assert [(s.phase.value, s.desired_revision) for s in reports] == [
        ("Pending", 3), ("Starting", 3), ("Running", 3),
    ]  # fmt: skip
    ref.ask(Apply(revision=4, score=SCORE), timeout=5)  # adopted: nothing made again
    assert runtime.units["web"].id == "u3"
    assert reports[-1].running_revision is None
    ref.ask(Remove(revision=5), timeout=5)
    assert [s.phase.value for s in reports[-2:]] == ["Stopping", "Removed"]
    assert runtime.calls == ["ensure web 3", "ensure web 4", "remove web"]


def test_a_score_whose_type_has_no_runtime_here_is_failed_naming_type(
    reports: list[DeploymentState],
) -> None:
    runtime = MemoryWorkloads("kvm")
    ref = start(RuntimeRegistry([runtime]), reports)
    try:
        ref.ask(Apply(revision=2, score=SCORE), timeout=5)
    finally:
        ref.stop()
    failed = reports[-1]
    assert (failed.phase, failed.desired_revision) == (Phase.FAILED, 2)
    assert failed.message is not None
    assert "`type` 'podman'" in failed.message
    assert "this device runs: kvm" in failed.message
    assert runtime.calls == []


def test_what_another_runtime_holds_goes_once_the_new_type_runs(
    reports: list[DeploymentState],
) -> None:
    podman, kvm = MemoryWorkloads("podman"), MemoryWorkloads("kvm")
    kvm.units["web"] = Unit(name="vm", id="v1", running=True, revision=1)  # the old type's
    ref = start(RuntimeRegistry([podman, kvm]), reports)
    try:
        ref.ask(Apply(revision=2, score=SCORE), timeout=5)
        assert "web" in podman.units
        assert kvm.units == {}
        assert [s.phase.value for s in reports] == ["Pending", "Starting", "Running"]
        ref.ask(Remove(revision=3), timeout=5)  # a deletion asks every runtime
    finally:
        ref.stop()
    assert podman.units == {}
    assert kvm.calls[-1] == "remove web"
    assert [s.phase.value for s in reports[-2:]] == ["Stopping", "Removed"]


def test_the_desired_book_never_stores_a_type_without_a_runtime(tmp_path: Path) -> None:
    store = DesiredStore(tmp_path)
    book = DesiredBook(store, runs=("kvm",))
    answer = book.put(WEB, revision=1, value=GOOD)
    assert isinstance(answer, Apply)
    assert answer.score is None
    assert answer.error is not None
    assert "`type` 'podman'" in answer.error
    assert book.put(WEB, revision=1, value=GOOD) is None  # answered once
    assert store.load().entries == {}
    assert "web" not in book


def test_the_registry_routes_by_type_and_refuses_two_runtimes_of_one_type() -> None:
    podman, kvm = MemoryWorkloads("podman"), MemoryWorkloads("kvm")
    registry = RuntimeRegistry([podman, kvm])
    assert registry.types == ("podman", "kvm")
    assert registry.for_score(SCORE) is podman
    assert score_type(SCORE) == "podman"
    assert registry.get("kubernetes") is None
    with pytest.raises(ValueError, match="two runtimes"):
        RuntimeRegistry([podman, MemoryWorkloads("podman")])
    with pytest.raises(ValueError, match="at least one"):
        RuntimeRegistry([])


class Recorder:
    def __init__(self) -> None:
        self.values: list[tuple[str, str, bytes]] = []

    def publish(self, bucket: str, key: str, value: bytes, *, replay: bool = True) -> None:
        self.values.append((bucket, key, value))


@pytest.mark.parametrize(
    ("kinds", "listed"), [(None, ["podman"]), (("podman", "kvm"), ["podman", "kvm"])]
)
def test_the_device_info_lists_the_runtimes_the_agent_has(
    tmp_path: Path, kinds: tuple[str, ...] | None, listed: list[str]
) -> None:
    fake = FakeRuntime()
    runtimes = None
    if kinds is not None:
        extra = [MemoryWorkloads(k) for k in kinds[1:]]
        runtimes = RuntimeRegistry([PodmanWorkloads(runtime=fake, device_id=DEVICE), *extra])
    recorder = Recorder()
    config = AgentConfig(device_id=DEVICE, labels={}, nats_urls=["nats://unused"])
    ref = DeviceActor.start(
        config=config, runtime=fake, publisher=recorder, store=DesiredStore(tmp_path),
        timers=FakeTimers(), instance_id="9f2c41d07a3b5e68", runtimes=runtimes,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not any(b == BUCKET_DEVICE_INFO for b, _, _ in recorder.values):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        ref.stop()
    [info] = [decode_info(v) for b, _, v in recorder.values if b == BUCKET_DEVICE_INFO]
    assert info.runtimes == listed
    assert info.inventory.runtime_name == "podman"  # the main runtime's, as before
