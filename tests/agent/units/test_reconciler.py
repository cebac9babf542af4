"""Reconciler logic against the in-memory runtime: phases, adoption, policies, retries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from fleet.actors.agent.health import RESTART_GRACE
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
from fleet.contracts.limits import MAX_MESSAGE_LENGTH
from fleet.runtime.podman.port import REVISION_LABEL, owner_labels, temporary_name
from tests.agent.fakes import FakeRuntime, FakeTimers

IMAGE = "registry.local/busybox:1"
NEW_IMAGE = "registry.local/busybox:2"


def score(
    *,
    env: dict[str, str] | None = None,
    policy: str = "always",
    port: int = 8080,
    image: str = IMAGE,
) -> PodmanScore:
    return PodmanScore(
        containers=[
            ContainerSpec(
                name="web",
                image=image,
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
        self.now = 1000.0

    def start(self) -> None:
        self.ref = DeploymentReconciler.start(
            device_id=DeviceId("dev1"),
            deployment=DeploymentName("web"),
            runtime=self.runtime,
            report=self.states.append,
            timers=self.timers,
            crash_window=60.0,
            crash_restarts=3,
            clock=lambda: self.now,
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
    h.runtime.exit(container.id, code, at=time.time() - 10)  # podman did not restart it
    h.send(Check(reason="podman event"))
    [after] = h.owned()
    assert after.running is restarted
    # never started again: a fresh container replaces one that has run
    assert (after.id != container.id) is restarted
    assert not any(c == f"start {container.id}" for c in h.runtime.calls[-5:])


def test_a_container_that_just_stopped_is_left_to_podman_for_a_grace(h: Harness) -> None:
    h.send(Apply(revision=1, score=score()))
    [container] = h.owned()
    h.runtime.exit(container.id, 1)  # just now: podman's restart policy goes first
    h.timers.scheduled.clear()
    h.send(Check(reason="podman event"))
    assert [c.id for c in h.owned()] == [container.id]
    [(_, check, delay)] = h.timers.scheduled
    assert isinstance(check, Check)
    assert 0 < delay <= RESTART_GRACE
    h.runtime.exit(container.id, 1, at=time.time() - RESTART_GRACE)  # still down after it
    h.send(check)
    [after] = h.owned()
    assert after.id != container.id
    assert after.running


def test_a_created_container_that_never_started_is_started(h: Harness) -> None:
    h.runtime.taken_ports.add(8080)
    h.send(Apply(revision=1, score=score()))
    [container] = h.owned()
    assert container.state == "created"
    h.runtime.taken_ports.clear()
    h.send(Check(reason="retry"))
    [after] = h.owned()
    assert after.id == container.id
    assert after.running


def test_an_image_change_pulls_first_and_keeps_the_old_one_until_the_new_one_exists(
    h: Harness,
) -> None:
    h.send(Apply(revision=1, score=score()))
    [old] = h.owned()
    h.runtime.registry.add(NEW_IMAGE)
    h.runtime.calls.clear()
    h.send(Apply(revision=2, score=score(image=NEW_IMAGE)))
    [new] = h.owned()
    assert new.name == "fleet-dev1-web-web"
    assert new.running
    assert new.labels[REVISION_LABEL] == "2"
    steps = [c.split()[0] for c in h.runtime.calls if c.split()[0] != "image_present"]
    assert steps[:7] == ["list", "pull", "create", "stop", "remove", "rename", "start"]
    assert f"create {temporary_name(new.name)}" in h.runtime.calls
    assert f"stop {old.id}" in h.runtime.calls
    assert h.states[-1].phase.value == "Running"
    assert h.states[-1].running_revision is None


@pytest.mark.parametrize("registry", ["missing-tag", "down"])
def test_a_failed_pull_leaves_the_old_revision_running_and_says_so(
    h: Harness, registry: str
) -> None:
    h.send(Apply(revision=1, score=score()))
    [old] = h.owned()
    h.runtime.registry_up = registry != "down"
    h.send(Apply(revision=2, score=score(image=NEW_IMAGE)))
    assert [(c.id, c.running) for c in h.owned()] == [(old.id, True)]
    last = h.states[-1]
    assert last.phase.value == ("Failed" if registry == "missing-tag" else "Pulling")
    assert NEW_IMAGE in (last.message or "")
    assert last.desired_revision == 2
    assert last.running_revision == 1
    h.runtime.registry_up = True
    h.runtime.registry.add(NEW_IMAGE)
    h.send(Check(reason="retry"))
    assert h.states[-1].phase.value == "Running"
    assert h.states[-1].running_revision is None


def test_leftovers_of_an_interrupted_replace_are_cleaned(h: Harness) -> None:
    h.send(Apply(revision=1, score=score()))
    [old] = h.owned()
    # the agent died after creating the replacement: both exist
    spec = score(env={"A": "b"}).containers[0]
    labels = {**owner_labels("dev1", "web"), "fleet.nationtech.io/container": "web"}
    h.runtime.create(name=temporary_name(old.name), spec=spec, labels=labels)
    h.send(Apply(revision=2, score=score(env={"A": "b"})))
    [new] = h.owned()
    assert new.name == old.name
    assert new.id != old.id
    assert new.running


def test_a_malformed_entry_keeps_the_last_valid_score_running_and_repaired(h: Harness) -> None:
    h.send(Apply(revision=1, score=score()))
    h.send(Apply(revision=2, score=None, error="the desired state of 'web' is malformed: x"))
    last = h.states[-1]
    assert (last.phase.value, last.desired_revision, last.running_revision) == ("Failed", 2, 1)
    [container] = h.owned()
    h.runtime.remove(container.id)  # drift while the entry is malformed
    h.send(Check(reason="podman event"))
    [back] = h.owned()
    assert back.running
    assert h.states[-1] == last  # still just the one report: Failed, naming the field


def test_a_crash_loop_is_failed_with_its_exit_code_and_output_then_recovers(
    h: Harness,
) -> None:
    h.send(Apply(revision=1, score=score()))
    [container] = h.owned()
    h.runtime.output[container.id] = ["starting", "\x1b[31mboom\x1b[0m: no config"]
    for _ in range(3):  # podman restarts it, and the agent looks after each exit
        h.now += 1
        h.runtime.restarted(container.id, code=3)
        h.send(Check(reason="podman event", exits=(("web", 3),)))
    last = h.states[-1]
    assert last.phase.value == "Failed"
    assert "crash-looping" in (last.message or "")
    assert "exit code 3" in (last.message or "")
    assert "no config" in (last.message or "")
    assert "\x1b" not in (last.message or "")
    h.now += 30
    h.send(Check(reason="resync"))
    assert h.states[-1].phase.value == "Failed"  # up for less than the window
    h.now += 31
    h.send(Check(reason="resync"))
    assert h.states[-1].phase.value == "Running"  # a whole window without a restart


def test_a_failed_exit_that_is_not_restarted_is_reported(h: Harness) -> None:
    h.send(Apply(revision=1, score=score(policy="no")))
    [container] = h.owned()
    h.runtime.output[container.id] = ["fatal: missing DATABASE_URL"]
    h.runtime.exit(container.id, 2)
    h.send(Check(reason="podman event"))
    message = h.states[-1].message or ""
    assert h.states[-1].phase.value == "Failed"
    assert "exited with code 2" in message
    assert "missing DATABASE_URL" in message


def test_report_messages_are_bounded(h: Harness) -> None:
    h.runtime.taken_ports.add(8080)
    h.runtime.start_error = "x" * (MAX_MESSAGE_LENGTH * 3)
    h.send(Apply(revision=1, score=score()))
    assert h.states[-1].phase.value == "Failed"
    assert len(h.states[-1].message or "") == MAX_MESSAGE_LENGTH


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
