"""SIGKILL of the agent in the middle of replacing a container that mounts a volume:
after a restart one container runs, no orphan is left, and the volume's data is intact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.agent.conftest import AgentWorld, running, wait_for
from tests.agent.process.harness import AgentProcess
from tests.agent.workloads.conftest import volumes

pytestmark = pytest.mark.podman


def score(image: str, version: str) -> dict[str, Any]:
    # busybox sleep as PID 1 ignores SIGTERM: the old container takes the whole stop
    # timeout to stop, the window in which the agent is killed
    container = {
        "name": "app", "image": image, "command": ["sleep", "300"], "env": {"V": version},
        "volumes": [{"name": "data", "path": "/data", "remove_with_deployment": True}],
    }  # fmt: skip
    return {"type": "podman", "containers": [container]}


@pytest.mark.timeout(150)
def test_sigkill_mid_replace_keeps_the_volume_and_leaves_no_orphan(
    world: AgentWorld, agents: list[AgentProcess], tmp_path: Path
) -> None:
    image = world.podman.image
    first = world.put_desired("cam", score(image, "1"))
    agent = AgentProcess(world, tmp_path)
    agents.append(agent)
    agent.start()
    world.wait_state("cam", lambda s: running(s, first), timeout=40)
    name = f"fleet-{world.device}-cam-app"
    world.podman.podman("exec", name, "sh", "-c", "echo precious > /data/file")

    second = world.put_desired("cam", score(image, "2"))

    def mid_replace() -> bool:
        seen = {c["Names"][0]: c["State"] for c in world.owned("cam")}
        return f"{name}.next" in seen and seen.get(name) != "running"

    wait_for(mid_replace, timeout=40, what="the replacement made, the old one stopping")
    agent.kill()

    restarted = AgentProcess(world, tmp_path)
    agents.append(restarted)
    restarted.start()
    world.wait_state("cam", lambda s: running(s, second), timeout=60)
    final = world.owned("cam")
    assert [c["Names"][0] for c in final] == [name]  # no duplicate, no .next
    assert world.podman.podman("exec", name, "cat", "/data/file").stdout == "precious\n"
    assert list(volumes(world)) == [f"fleet-{world.device}-cam-data"]
    assert restarted.stop() == 0
