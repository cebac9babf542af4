"""``fleetctl describe device`` answered by a real agent: who it is, what runs, and the
last failure of a deployment."""

from __future__ import annotations

import pytest

from fleet import __version__
from fleet.contracts import DeploymentName, Phase
from tests.agent.conftest import AgentWorld, running, wait_for

from .conftest import ask_describe, ticker

pytestmark = pytest.mark.timeout(120)


def test_describe_names_the_device_its_deployments_and_the_last_failure(
    world: AgentWorld,
) -> None:
    app = world.start_agent(world.config(labels={"site": "lab", "model": "pi4"}))
    revision = world.put_desired("app", ticker(image=world.podman.image))
    world.wait_state("app", lambda s: running(s, revision), timeout=60)
    missing = {"type": "podman", "containers": [
        {"name": "web", "image": f"{world.podman.registry}/nothing-here:1"}]}  # fmt: skip
    world.put_desired("broken", missing)
    world.wait_state("broken", lambda s: s.phase is Phase.FAILED, timeout=60)

    described = wait_for(
        lambda: (d := ask_describe(world)).inventory is not None
        and len(d.deployments) == 2 and d,
        timeout=30, what="a description with both deployments",
    )  # fmt: skip
    assert described.device_id == world.device
    assert described.labels == {"site": "lab", "model": "pi4"}
    assert described.agent_version == __version__
    assert described.instance_id == app.instance_id
    assert described.inventory is not None
    assert described.inventory.runtime_name == "podman"
    assert described.error is None
    by_name = {str(d.deployment): d for d in described.deployments}
    ok, broken = by_name["app"], by_name["broken"]
    assert (ok.phase, ok.desired_revision) == (Phase.RUNNING, revision)
    assert [(c.name, c.state, c.revision) for c in ok.containers] == [("app", "running", revision)]
    assert ok.last_failure is None
    assert broken.phase is Phase.FAILED
    assert broken.last_failure is not None
    assert "nothing-here" in broken.last_failure
    assert broken.containers == ()

    # The failure is fixed: the phase moves on, the last failure is still shown.
    fixed = world.put_desired("broken", ticker(image=world.podman.image))
    world.wait_state("broken", lambda s: running(s, fixed), timeout=60)
    again = {str(d.deployment): d for d in ask_describe(world).deployments}["broken"]
    assert again.phase is Phase.RUNNING
    assert again.last_failure == broken.last_failure

    # Removed: no longer described.
    world.delete_desired("broken")
    world.wait_state("broken", lambda s: s.phase is Phase.REMOVED, timeout=60)
    names = [d.deployment for d in ask_describe(world).deployments]
    assert names == [DeploymentName("app")]
