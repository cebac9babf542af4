"""Two agents started with one device id both notice, and say who is who."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from tests.agent.conftest import AgentWorld, wait_for
from tests.agent.process.harness import AgentProcess
from tests.agent.process.test_agent_process import heartbeat

pytestmark = pytest.mark.podman

STARTED = re.compile(r"started as instance ([0-9a-f]{16})")


def started(agent: AgentProcess) -> re.Match[str] | None:
    return STARTED.search(agent.log())


@pytest.mark.timeout(60)
def test_two_agents_with_one_device_id_both_log_it(
    world: AgentWorld, agents: list[AgentProcess], tmp_path: Path
) -> None:
    first = AgentProcess(world, tmp_path, name="one")
    second = AgentProcess(world, tmp_path, name="two")
    agents += [first, second]
    first.start()
    second.start()
    ids = {}
    for agent in (first, second):
        match = wait_for(functools.partial(started, agent), what="the instance id")
        ids[agent] = match.group(1)
    assert ids[first] != ids[second]
    beats: set[str | None] = set()  # both instance ids show on the one heartbeat key

    def both_beat() -> bool:
        beat = heartbeat(world)
        if beat is not None:
            beats.add(beat.instance_id)
        return len(beats) == 2

    wait_for(both_beat, what="beats of both instances")
    assert beats == {ids[first], ids[second]}
    for agent, other in ((first, second), (second, first)):
        log = agent.wait_log("is used by another agent too", timeout=10)  # a few beats
        [line] = [ln for ln in log.splitlines() if "is used by another agent too" in ln]
        assert " ERROR " in line
        assert world.device in line
        assert f"instance {ids[other]}" in line
        assert f"this one, instance {ids[agent]}" in line
    assert first.alive  # both keep running
    assert second.alive
    assert first.stop() == 0
    assert second.stop() == 0
