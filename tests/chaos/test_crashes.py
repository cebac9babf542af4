"""SIGKILL mid-operation, of every part, ends in a correct fleet with no orphan container.

Each scenario runs the whole fleet as real processes (:mod:`tests.chaos.world`), kills
one part at a moment chosen by a condition, starts it again, and ends with the load
checker's PASS and no container that the desired state does not account for. A
neighbour Deployment (``keep``) runs beside the one under test in every scenario: it
must come through untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.devtools.podman_sandbox import PodmanEnv
from tests.budgets import CONVERGE_S

from .world import ChaosWorld, chaos_world, wait, web_score

pytestmark = [pytest.mark.podman, pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def world(tmp_path: Path, podman: PodmanEnv) -> Iterator[ChaosWorld]:
    with chaos_world(root=tmp_path, podman=podman) as w:
        w.apply("keep", web_score(podman.image, marker="keep"))
        w.wait_running("keep", timeout=CONVERGE_S)
        yield w


def converged(world: ChaosWorld, *names: str) -> None:
    for name in names:
        world.wait_running(name, timeout=CONVERGE_S)
    verdict = world.verdict()
    assert verdict.ok, verdict.render()


def no_orphans(world: ChaosWorld) -> None:
    wait(lambda: not world.orphans(), timeout=30, what=f"no orphans ({world.orphans()})")


def test_nats_server_killed_mid_rollout(world: ChaosWorld) -> None:
    world.apply("web", web_score(world.podman.image, containers=2))
    wait(lambda: any(d == "web" for _, d in world.reports()), timeout=30, what="a web report")
    world.kill_nats()
    world.nats.start()  # same store, same port
    converged(world, "keep", "web")
    no_orphans(world)


def test_operator_killed_mid_rollout(world: ChaosWorld) -> None:
    assert world.operator is not None
    world.apply("web", web_score(world.podman.image, containers=2))
    wait(lambda: any(d == "web" for _, d in world.desired()), timeout=30, what="a web entry")
    world.kill(world.operator)
    world.apply("web", web_score(world.podman.image, containers=2, marker="v2"))  # while down
    world.start_operator()
    converged(world, "keep", "web")
    no_orphans(world)
    for (_, name), entry in world.desired().items():
        if name == "web":
            assert b"v2" in entry.value


def test_operator_killed_mid_delete(world: ChaosWorld) -> None:
    assert world.operator is not None
    world.apply("web", web_score(world.podman.image, containers=2))
    world.wait_running("web", timeout=CONVERGE_S)
    # Frozen while the delete is asked, so that the kill lands before the finalizer is
    # released (a running operator releases it within milliseconds, before a poll sees
    # the deletionTimestamp), then let go for an instant: killed at whatever step it got to.
    world.pause(world.operator)
    world.delete("web")
    wait(
        lambda: ((world.deployment("web") or {}).get("metadata") or {}).get("deletionTimestamp"),
        timeout=30,
        what="web being deleted",
    )
    world.resume(world.operator)
    world.kill(world.operator)
    world.start_operator()
    wait(lambda: world.deployment("web") is None, timeout=CONVERGE_S, what="web gone")
    assert not [k for k in world.desired() if k[1] == "web"]
    converged(world, "keep")
    no_orphans(world)


@pytest.mark.parametrize("step", ["Pulling", "Starting"])
def test_agent_killed_at_each_step_of_a_replace(world: ChaosWorld, step: str) -> None:
    device = world.devices[0]
    world.apply("web", web_score(world.podman.image, containers=2))
    world.wait_running("web", timeout=CONVERGE_S)
    before = world.desired()[device, "web"].revision
    # A new tag (a real pull) and a new command: every container is replaced.
    image = world.podman.push_tag(f"chaos-{step.lower()}")
    seen, cancel = world.on_report(device, "web", phase=step, after=before)
    try:
        world.apply("web", web_score(image, containers=2, marker="v2"))
        assert seen.wait(60), f"{device} never reported {step} for the new revision"
        world.kill(world.agents[device])
    finally:
        cancel()
    world.start_agent(device)
    converged(world, "keep", "web")
    no_orphans(world)


@pytest.mark.parametrize("step", ["Stopping", "first container gone"])
def test_agent_killed_at_each_step_of_a_delete(world: ChaosWorld, step: str) -> None:
    device = world.devices[0]
    world.apply("web", web_score(world.podman.image, containers=3))
    world.wait_running("web", timeout=CONVERGE_S)

    def mine() -> list[str]:
        return [
            str((c.get("Names") or ["?"])[0])  # type: ignore[index]
            for c in world.podman.containers()
            if f"fleet-{device}-web-" in str(c.get("Names"))
        ]

    assert len(mine()) == 3
    seen, cancel = world.on_report(device, "web", phase="Stopping")
    try:
        world.delete("web")
        if step == "Stopping":
            assert seen.wait(60), f"{device} never reported Stopping"
        else:
            wait(lambda: len(mine()) < 3, timeout=60, what="a container removed", interval=0.02)
        world.kill(world.agents[device])
    finally:
        cancel()
    world.start_agent(device)
    wait(lambda: world.deployment("web") is None, timeout=CONVERGE_S, what="web gone")
    wait(lambda: not mine(), timeout=CONVERGE_S, what=f"{device}'s web containers removed")
    converged(world, "keep")
    no_orphans(world)
