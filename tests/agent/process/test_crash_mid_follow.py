"""A followed log whose agent is SIGKILLed: the follower is told within its timeout, the
container keeps running, and the restarted agent streams it again."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.contracts import DeploymentName, LogsChunk, LogsRequest
from fleet.runtime.nats import device_ask
from fleet.runtime.nats.device_ask import NoAnswer
from tests.agent.conftest import AgentWorld, running, wait_for
from tests.agent.ondemand.conftest import ask_logs, ticker
from tests.agent.process.harness import AgentProcess
from tests.budgets import budget

pytestmark = pytest.mark.podman


@pytest.mark.timeout(120)
def test_sigkill_mid_follow_then_restart(
    world: AgentWorld, agents: list[AgentProcess], tmp_path: Path
) -> None:
    revision = world.put_desired("app", ticker(image=world.podman.image, every=0.2))
    agent = AgentProcess(world, tmp_path)
    agents.append(agent)
    agent.start()
    world.wait_state("app", lambda s: running(s, revision), timeout=40)
    container = world.container("app", "app")
    assert container is not None
    chunks: list[LogsChunk] = []

    async def follow() -> str:
        request = LogsRequest(deployment=DeploymentName("app"), tail=1, follow=True)
        try:
            async for chunk in device_ask.logs(world.bus.transport, world.device, request,
                                               timeout=budget(10.0), renew_every=0.5):  # fmt: skip
                chunks.append(chunk)
                if sum(len(c.lines) for c in chunks) >= 5 and agent.alive:
                    agent.kill()  # mid-stream
        except NoAnswer as exc:
            return str(exc)
        return "ended without an error"

    said = world.loop.run(follow(), timeout=budget(60))
    assert "did not answer" in said or "not listening" in said, said
    assert not agent.alive
    again = world.container("app", "app")
    assert again is not None
    assert (again["Id"], again["State"]["Status"]) == (container["Id"], "running")

    restarted = AgentProcess(world, tmp_path)
    agents.append(restarted)
    restarted.start()
    request = LogsRequest(deployment=DeploymentName("app"), tail=3)

    def answered() -> tuple[str, ...]:
        try:
            got = ask_logs(world, request, timeout=5)
        except NoAnswer:  # not listening yet
            return ()
        return got[0].lines if got[0].error is None else ()

    lines = wait_for(answered, timeout=40, what="the restarted agent answers")
    assert len(lines) == 3
    assert restarted.stop() == 0
