"""A deletion is finished even when the agent is killed in the middle of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.conftest import AgentWorld, running, sleep_score, wait_for
from tests.agent.process.harness import AgentProcess

pytestmark = pytest.mark.podman

#: When to SIGKILL the agent, by how many of the three containers are gone by then.
KILL_AFTER = {"at-once": None, "first-gone": 1, "two-gone": 2}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("point", list(KILL_AFTER))
def test_delete_then_sigkill_then_restart_leaves_no_container(
    world: AgentWorld, agents: list[AgentProcess], tmp_path: Path, point: str
) -> None:
    image = world.podman.image
    neighbour = world.put_desired("keep", sleep_score("one", image=image))
    revision = world.put_desired("web", sleep_score("a", "b", "c", image=image))
    agent = AgentProcess(world, tmp_path)
    agents.append(agent)
    agent.start()
    world.wait_state("web", lambda s: running(s, revision), timeout=30)
    world.wait_state("keep", lambda s: running(s, neighbour), timeout=30)
    kept = {c["Id"] for c in world.owned("keep")}
    assert len(world.owned("web")) == 3

    world.delete_desired("web")
    gone = KILL_AFTER[point]
    if gone is not None:  # each container takes the 2 s stop timeout: a window to hit
        wait_for(lambda: len(world.owned("web")) <= 3 - gone, timeout=30, what=f"{gone} gone")
    agent.kill()
    left = len(world.owned("web"))

    restarted = AgentProcess(world, tmp_path)  # same config, same state dir
    agents.append(restarted)
    restarted.start()
    wait_for(lambda: world.owned("web") == [], timeout=40, what="every container removed")
    state = world.wait_state("web", lambda s: s.phase.value == "Removed", timeout=20)
    assert state.desired_revision > revision
    assert {c["Id"] for c in world.owned("keep")} == kept  # the neighbour untouched
    assert restarted.stop() == 0
    print(f"{point}: {left} of 3 left at the kill; removed after the restart")
