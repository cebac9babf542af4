"""Reconciler logic against the in-memory runtime: phases, adoption, policies, retries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fleet.actors.agent.messages import Apply, Check, Remove
from fleet.actors.agent.reconciler import DeploymentReconciler
from fleet.contracts import (
    ContainerSpec,
    DeploymentName,
    DeploymentState,
    DeviceId,
    PodmanScore,
    PortMapping,
)
from fleet.runtime.podman import owner_labels
from tests.agent.fakes import FakeRuntime, FakeTimers

IMAGE = "registry.local/busybox:1"


def score(
    *, env: dict[str, str] | None = None, policy: str = "always", port: int = 8080
) -> PodmanScore:
    return PodmanScore(
        containers=[
            ContainerSpec(
                name="web",
                image=IMAGE,
                env=env,
                restart_policy=policy,  # type: ignore[arg-type]
                ports=[PortMapping(host_port=port, container_port=80)],
            )
        ]
    )


class Harness:
    def __init__(self) -> None:
        self.runtime = FakeRuntime()
        self.runtime.registry.add(IMAGE)
        self.timers = FakeTimers()
        self.states: list[DeploymentState] = []
        self.ref: Any = None

    def start(self) -> None:
        self.ref = DeploymentReconciler.start(
            device_id=DeviceId("dev1"),
            deployment=DeploymentName("web"),
            runtime=self.runtime,
            report=self.states.append,
            timers=self.timers,
        )

    def send(self, message: object) -> None:
        self.ref.ask(message, timeout=5)

    def phases(self) -> list[str]:
        return [s.phase.value for s in self.states]

    def owned(self) -> list[Any]:
        return self.runtime.list_containers(labels=owner_labels("dev1", "web"))


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    harness.start()
    yield harness
    harness.ref.stop()


def test_apply_pulls_creates_starts_and_reports_each_phase(h: Harness) -> None:
    h.send(Apply(revision=7, score=score()))
    assert h.phases() == ["Pending", "Pulling", "Starting", "Running"]
    assert {s.desired_revision for s in h.states} == {7}
    [container] = h.owned()
    assert container.running
    assert container.name == "fleet-dev1-web-web"


def test_unchanged_spec_is_adopted_and_changed_spec_replaced(h: Harness) -> None:
    h.send(Apply(revision=1, score=score()))
    [first] = h.owned()
    h.send(Check(reason="resync"))
    h.send(Apply(revision=1, score=score()))
    assert [c.id for c in h.owned()] == [first.id]
    h.send(Apply(revision=2, score=score(env={"A": "b"})))
    [second] = h.owned()
    assert second.id != first.id
    assert h.states[-1].phase.value == "Running"
    assert h.states[-1].desired_revision == 2


@pytest.mark.parametrize(
    ("policy", "code", "restarted"),
    [
        ("always", 0, True),
        ("on-failure", 1, True),
        ("on-failure", 0, False),
        ("no", 1, False),
    ],
)
def test_exited_container_follows_its_restart_policy(
    h: Harness, policy: str, code: int, restarted: bool
) -> None:
    h.send(Apply(revision=1, score=score(policy=policy)))
    [container] = h.owned()
    h.runtime.exit(container.id, code)
    h.send(Check(reason="podman event"))
    [after] = h.owned()
    assert after.running is restarted


def test_malformed_entry_fails_and_leaves_containers_alone(h: Harness) -> None:
    h.send(Apply(revision=1, score=score()))
    [container] = h.owned()
    h.send(Apply(revision=2, score=None, error="the desired state of 'web' is malformed: x"))
    assert h.states[-1].phase.value == "Failed"
    assert h.states[-1].message == "the desired state of 'web' is malformed: x"
    assert [c.id for c in h.owned()] == [container.id]


def test_registry_down_keeps_pulling_with_backoff(h: Harness) -> None:
    h.runtime.registry_up = False
    h.send(Apply(revision=1, score=score()))
    assert h.states[-1].phase.value == "Pulling"
    assert "retrying in 1s" in (h.states[-1].message or "")
    h.send(Check(reason="retry"))
    delays = [d for _, m, d in h.timers.scheduled if isinstance(m, Check)]
    assert delays == [1.0, 2.0]  # doubling
    h.runtime.registry_up = True
    h.send(Check(reason="retry"))
    assert h.states[-1].phase.value == "Running"


def test_port_taken_fails_with_the_reason(h: Harness) -> None:
    h.runtime.taken_ports.add(8080)
    h.send(Apply(revision=3, score=score()))
    assert h.states[-1].phase.value == "Failed"
    assert "address already in use" in (h.states[-1].message or "")
    h.runtime.taken_ports.clear()
    h.send(Check(reason="retry"))
    assert h.states[-1].phase.value == "Running"


def test_remove_stops_and_reports_removed_with_the_delete_revision(h: Harness) -> None:
    h.send(Apply(revision=1, score=score()))
    h.send(Remove(revision=5))
    assert h.phases()[-2:] == ["Stopping", "Removed"]
    assert h.states[-1].desired_revision == 5
    assert h.owned() == []


def test_podman_unreachable_is_reported_and_retried(h: Harness) -> None:
    h.runtime.available = False
    h.send(Apply(revision=1, score=score()))
    assert h.states[-1].phase.value == "Failed"
    assert "podman is not reachable" in (h.states[-1].message or "")
    h.runtime.available = True
    h.send(Check(reason="retry"))
    assert h.states[-1].phase.value == "Running"
