"""Failures are reported in words a person can act on, and stay contained."""

from __future__ import annotations

import socket

import pytest

from tests.agent.conftest import AgentWorld, fetch, httpd_score, running
from tests.fixtures.podman import free_port

pytestmark = pytest.mark.podman


def test_malformed_entry_fails_alone_and_neighbours_are_untouched(world: AgentWorld) -> None:
    world.start_agent()
    port = free_port()
    rev = world.put_desired("web", httpd_score(image=world.podman.image, port=port))
    world.wait_state("web", lambda s: running(s, rev))
    before = world.container("web")
    assert before is not None

    bad_rev = world.put_desired("broken", b'{"type": "podman", "containers": [{"name": "X"}]}')
    state = world.wait_state("broken", lambda s: s.phase.value == "Failed")
    assert state.desired_revision == bad_rev
    assert state.message is not None
    assert "malformed" in state.message
    assert "containers[0]" in state.message

    world.put_desired("junk", b"not json at all")
    junk = world.wait_state("junk", lambda s: s.phase.value == "Failed")
    assert junk.message is not None
    assert "not valid JSON" in junk.message

    after = world.container("web")
    assert after is not None
    assert after["Id"] == before["Id"]
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]
    assert fetch(port) == "hello from fleet\n"
    assert world.state("web") is not None


def test_image_that_does_not_exist_fails_with_its_name(world: AgentWorld) -> None:
    world.start_agent()
    image = f"{world.podman.registry}/busybox:no-such-tag"
    rev = world.put_desired("web", httpd_score(image=image, port=free_port()))
    state = world.wait_state("web", lambda s: s.phase.value == "Failed")
    assert state.desired_revision == rev
    assert state.message is not None
    assert image in state.message
    assert "not found" in state.message


def test_port_taken_fails_with_the_reason_then_recovers(world: AgentWorld) -> None:
    world.start_agent()
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rev = world.put_desired("web", httpd_score(image=world.podman.image, port=port))
        state = world.wait_state("web", lambda s: s.phase.value == "Failed")
        assert state.message is not None
        assert "address already in use" in state.message
    world.wait_state("web", lambda s: running(s, rev))  # retried once the port is free
    assert fetch(port) == "hello from fleet\n"


def test_registry_down_means_pulling_with_backoff_then_running(world: AgentWorld) -> None:
    world.start_agent()
    image = world.podman.push_tag("later")
    world.podman.stop_registry()
    rev = world.put_desired("web", httpd_score(image=image, port=(port := free_port())))
    state = world.wait_state(
        "web", lambda s: s.phase.value == "Pulling" and "retrying" in (s.message or "")
    )
    assert state.desired_revision == rev
    world.podman.start_registry()
    world.wait_state("web", lambda s: running(s, rev))
    assert fetch(port) == "hello from fleet\n"
