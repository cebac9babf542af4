"""The privilege policy on the device: an entry written by hand into the desired-state
bucket, with the operator's own credentials, cannot grant itself a privilege."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleet.contracts import DeploymentState
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from tests.agent.conftest import AgentWorld, running
from tests.fixtures.podman import PodmanEnv
from tests.security.conftest import DEVICE_A, SecureFleet, operator_bus, secure_fleet

__all__ = ["operator_bus", "secure_fleet"]

pytestmark = pytest.mark.podman


def failed_at(revision: int) -> Callable[[DeploymentState], bool]:
    return lambda s: s.phase.value == "Failed" and s.desired_revision == revision


def privileged_score(image: str, **fields: Any) -> dict[str, Any]:
    container = {"name": "cam", "image": image, "command": ["sleep", "300"], **fields}
    return {"type": "podman", "containers": [container]}


@pytest.mark.timeout(120)
def test_a_hand_written_privileged_entry_is_refused_by_the_agent(
    secure_fleet: SecureFleet,
    operator_bus: Bus,
    event_loop_thread: EventLoopThread,
    podman: PodmanEnv,
    tmp_path: Path,
) -> None:
    world = AgentWorld(
        nats=secure_fleet.server, bus=operator_bus, loop=event_loop_thread,
        podman=podman, state_root=tmp_path, device=DEVICE_A,
    )  # fmt: skip
    config = world.config(
        nats_ca=secure_fleet.ca.ca_cert, nats_credentials=secure_fleet.creds[DEVICE_A]
    )
    world.start_agent(config)
    try:
        image = podman.image
        plain = world.put_desired("plain", privileged_score(image))
        cases: dict[str, dict[str, Any]] = {
            "containers[0].privileged": {"privileged": True, "host_network": True},
            "containers[0].host_network": {"host_network": True},
            "containers[0].devices": {"devices": ["/dev/null"]},
            "containers[0].cap_add": {"cap_add": ["SYS_ADMIN"]},
        }
        for field, fields in cases.items():
            deployment = field.rsplit(".", 1)[1].replace("_", "-")
            rev = world.put_desired(deployment, privileged_score(image, **fields))
            state = world.wait_state(deployment, failed_at(rev))
            assert state.message is not None
            assert f"`{field}`" in state.message
            assert "policy" in state.message
            assert world.owned(deployment) == []  # nothing privileged was made
        world.wait_state("plain", lambda s: running(s, plain), timeout=40)  # the neighbour runs
        made = world.owned()
        assert [c["Names"][0] for c in made] == [f"fleet-{DEVICE_A}-plain-cam"]
        inspected = podman.podman(
            "inspect", made[0]["Id"], "--format", "{{.HostConfig.Privileged}}"
        )
        assert inspected.stdout.strip() == "false"
    finally:
        for app in list(world.agents):
            world.stop_agent(app)


@pytest.mark.timeout(90)
def test_a_device_that_allows_devices_runs_one_and_still_refuses_the_rest(
    world: AgentWorld,
) -> None:
    world.start_agent(world.config(allow_privileges=frozenset({"devices"})))
    image = world.podman.image
    rev = world.put_desired(
        "cam", privileged_score(image, devices=["/dev/null"], cap_add=["NET_ADMIN"])
    )
    state = world.wait_state("cam", failed_at(rev))
    assert state.message is not None
    assert "`containers[0].cap_add`" in state.message
    assert world.owned("cam") == []

    rev = world.put_desired("cam", privileged_score(image, devices=["/dev/null"]))
    world.wait_state("cam", lambda s: running(s, rev), timeout=40)
    container = world.container("cam", "cam")
    assert container is not None
    assert [d["PathOnHost"] for d in container["HostConfig"]["Devices"]] == ["/dev/null"]


@pytest.mark.timeout(120)
def test_a_policy_tightened_across_a_restart_removes_what_it_no_longer_allows(
    world: AgentWorld,
) -> None:
    app = world.start_agent(world.config(allow_privileges=frozenset({"devices"})))
    image = world.podman.image
    rev = world.put_desired("cam", privileged_score(image, devices=["/dev/null"]))
    plain = world.put_desired("plain", privileged_score(image))
    world.wait_state("cam", lambda s: running(s, rev), timeout=40)
    world.wait_state("plain", lambda s: running(s, plain), timeout=40)
    world.stop_agent(app)  # its containers keep running

    world.start_agent()  # the device's owner took "devices" out of [policy] allow
    state = world.wait_state("cam", lambda s: s.phase.value == "Failed", timeout=40)
    assert state.message is not None
    assert "`containers[0].devices`" in state.message
    world.wait_container("cam", lambda c: c is None, name="cam", timeout=40)
    assert world.owned("cam") == []
    assert world.container("plain", "cam") is not None  # the neighbour is untouched
