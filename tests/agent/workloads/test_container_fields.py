"""The container fields of issue 14 on real podman: what the score says is what podman
made; bad values and fields this agent does not know are refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.agent.conftest import AgentWorld, running
from tests.agent.workloads.test_privileges import failed_at

pytestmark = pytest.mark.podman


def score(image: str, **fields: Any) -> dict[str, Any]:
    container = {"name": "app", "image": image, "command": ["-c", "id; pwd; sleep 300"], **fields}
    return {"type": "podman", "containers": [container]}


@pytest.mark.timeout(90)
def test_user_working_dir_entrypoint_labels_limits_and_host_network(world: AgentWorld) -> None:
    world.start_agent(world.config(allow_privileges=frozenset({"host_network"})))
    image = world.podman.image
    fields = {
        "user": "1000:1000",
        "working_dir": "/tmp",
        "entrypoint": ["sh"],
        "labels": {"team": "vision", "fleet.nationtech.io.example/x": "y"},
        "memory": "64Mi",
        "cpus": 0.5,
        "host_network": True,
    }
    rev = world.put_desired("app", score(image, **fields))
    world.wait_state("app", lambda s: running(s, rev), timeout=40)
    made = world.container("app", "app")
    assert made is not None
    assert made["Config"]["User"] == "1000:1000"
    assert made["Config"]["WorkingDir"] == "/tmp"
    assert made["Config"]["Labels"]["team"] == "vision"
    assert made["Config"]["Labels"]["fleet.nationtech.io/device"] == world.device
    assert made["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert made["HostConfig"]["CpuQuota"] == 50_000
    assert made["HostConfig"]["NetworkMode"] == "host"
    logs = world.podman.podman("logs", made["Id"]).stdout
    assert "uid=1000 gid=1000" in logs
    assert "/tmp" in logs


BAD: dict[str, dict[str, Any]] = {
    "containers[0].memory": {"memory": "lots"},
    "containers[0].cpus": {"cpus": 0},
    "containers[0].user": {"user": "root; rm -rf /"},
    "containers[0].working_dir": {"working_dir": "relative"},
    "containers[0].labels": {"labels": {"fleet.nationtech.io/device": "someone-else"}},
    "containers[0].volumes[0].path": {"volumes": [{"name": "data", "path": "/data/../etc"}]},
    "containers[0].devices[0]": {"devices": ["/etc/shadow"]},
    "containers[0].healthcheck.interval_s": {"healthcheck": {"command": ["true"], "interval_s": 0}},
    "containers[0].gpus": {"gpus": "all"},  # a field this agent does not know
    "containers[0].volumes[0].size": {"volumes": [{"name": "d", "path": "/d", "size": "1Gi"}]},
}


@pytest.mark.timeout(120)
def test_bad_values_and_unknown_fields_are_failed_naming_the_field(world: AgentWorld) -> None:
    world.start_agent()
    image = world.podman.image
    neighbour = world.put_desired("neighbour", score(image, entrypoint=["sh"]))
    revisions = {}
    for index, (field, fields) in enumerate(BAD.items()):
        revisions[field] = (
            f"bad-{index}",
            world.put_desired(f"bad-{index}", score(image, **fields)),
        )
    for field, (deployment, rev) in revisions.items():
        state = world.wait_state(deployment, failed_at(rev))
        assert state.message is not None
        assert field in state.message, (field, state.message)
        assert world.owned(deployment) == []
    world.wait_state("neighbour", lambda s: running(s, neighbour), timeout=40)
