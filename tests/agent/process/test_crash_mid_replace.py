"""A replace interrupted by SIGKILL at any step converges on restart: one container, no orphan."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.conftest import AgentWorld, running, sleep_score, wait_for
from tests.agent.process.harness import AgentProcess

pytestmark = pytest.mark.podman

Seen = dict[str, str]  # container name -> state


def _next(seen: Seen, container: str) -> bool:
    return any(n.endswith(f"-{container}.next") for n in seen)


def _old(seen: Seen, container: str) -> str | None:
    return next((st for n, st in seen.items() if n.endswith(f"-{container}")), None)


#: When to SIGKILL the agent during the replace of containers a then b, as podman shows
#: it. The old containers take the 2 s stop timeout to stop (busybox sleep ignores
#: SIGTERM), which makes the middle of a replace a window a test can hit. The narrower
#: windows (between create and stop, remove and rename, rename and start: milliseconds)
#: are built by hand in tests/agent/reconciling/test_interrupted_replace.py.
KILL_WHEN = {
    # a's replacement exists under its temporary name; old a is being stopped
    "a-old-stopping": lambda seen: _next(seen, "a") and _old(seen, "a") != "running",
    # a is done; b is in the middle of its own replace
    "b-next-made": lambda seen: _next(seen, "b") and not _next(seen, "a"),
}


def seen(world: AgentWorld) -> Seen:
    return {c["Names"][0]: c["State"] for c in world.owned("web")}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("point", list(KILL_WHEN))
def test_sigkill_during_a_replace_then_restart_converges(
    world: AgentWorld, agents: list[AgentProcess], tmp_path: Path, point: str
) -> None:
    image = world.podman.image
    first = world.put_desired("web", sleep_score("a", "b", image=image, env={"V": "1"}))
    agent = AgentProcess(world, tmp_path)
    agents.append(agent)
    agent.start()
    world.wait_state("web", lambda s: running(s, first), timeout=30)

    second = world.put_desired("web", sleep_score("a", "b", image=image, env={"V": "2"}))
    wait_for(lambda: KILL_WHEN[point](seen(world)), timeout=30, what=point)
    agent.kill()
    at_kill = seen(world)

    restarted = AgentProcess(world, tmp_path)
    agents.append(restarted)
    restarted.start()
    world.wait_state("web", lambda s: running(s, second), timeout=40)
    canonical = [f"fleet-{world.device}-web-{c}" for c in ("a", "b")]
    final = world.owned("web")
    assert sorted(c["Names"][0] for c in final) == canonical, at_kill  # no duplicate, no .next
    for container in final:
        assert container["State"] == "running"
        inspected = world.podman.podman("inspect", container["Id"], "--format", "{{.Config.Env}}")
        assert "V=2" in inspected.stdout
    assert restarted.stop() == 0
