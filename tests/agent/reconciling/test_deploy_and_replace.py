"""Desired state in, real containers out: deploy, serve, replace, remove."""

from __future__ import annotations

import pytest

from tests.agent.conftest import AgentWorld, fetch, httpd_score, running
from tests.fixtures.podman import free_port

pytestmark = pytest.mark.podman


def test_deploy_serves_a_page_and_reports_running(world: AgentWorld) -> None:
    world.start_agent()
    port = free_port()
    rev = world.put_desired("web", httpd_score(image=world.podman.image, port=port))
    assert fetch(port) == "hello from fleet\n"
    state = world.wait_state("web", lambda s: running(s, rev))
    assert state.message is None
    assert state.device_id == world.device


def test_changing_env_or_command_replaces_the_container(world: AgentWorld) -> None:
    world.start_agent()
    port = free_port()
    rev1 = world.put_desired("web", httpd_score(image=world.podman.image, port=port))
    world.wait_state("web", lambda s: running(s, rev1))
    first = world.container("web")
    assert first is not None

    rev2 = world.put_desired(
        "web", httpd_score(image=world.podman.image, port=port, env={"COLOR": "blue"})
    )
    world.wait_state("web", lambda s: running(s, rev2))
    second = world.container("web")
    assert second is not None
    assert second["Id"] != first["Id"]
    assert "COLOR=blue" in second["Config"]["Env"]
    assert fetch(port) == "hello from fleet\n"

    score = httpd_score(image=world.podman.image, port=port, env={"COLOR": "blue"})
    score["containers"][0]["command"] = [
        "sh",
        "-c",
        "trap 'exit 0' TERM; echo v2 > /tmp/index.html; httpd -f -p 80 -h /tmp & wait",
    ]
    rev3 = world.put_desired("web", score)
    world.wait_state("web", lambda s: running(s, rev3))
    third = world.container("web")
    assert third is not None
    assert third["Id"] != second["Id"]
    assert fetch(port) == "v2\n"  # the new command serves another page


def test_deleting_the_desired_entry_removes_the_container_and_reports_it(
    world: AgentWorld,
) -> None:
    world.start_agent()
    port = free_port()
    rev = world.put_desired("web", httpd_score(image=world.podman.image, port=port))
    world.wait_state("web", lambda s: running(s, rev))
    world.delete_desired("web")
    state = world.wait_state("web", lambda s: s.phase.value == "Removed")
    assert state.desired_revision > rev
    world.wait_container("web", lambda c: c is None)


def test_containers_of_others_are_never_touched(world: AgentWorld) -> None:
    world.podman.podman(
        "run",
        "-d",
        "--name",
        f"fleet-{world.device}-web-other",
        "--label",
        world.podman.session_label,
        world.podman.image,
        "sleep",
        "300",
    )
    world.start_agent()
    port = free_port()
    rev = world.put_desired("web", httpd_score(image=world.podman.image, port=port))
    world.wait_state("web", lambda s: running(s, rev))
    world.delete_desired("web")
    world.wait_state("web", lambda s: s.phase.value == "Removed")
    other = world.container("web", "other")
    assert other is not None
    assert other["State"]["Running"]
