"""A malformed update is reported, never stored, and never stops the last valid revision."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from fleet.contracts.limits import MAX_CONTAINERS
from tests.agent.conftest import AgentWorld, fetch, httpd_score, running
from tests.fixtures.podman import free_port

pytestmark = pytest.mark.podman


def many_containers(image: str, count: int) -> dict[str, Any]:
    return {
        "type": "podman",
        "containers": [{"name": f"c{i}", "image": image} for i in range(count)],
    }


HOSTILE: dict[str, tuple[Callable[[str], object], str]] = {
    # the 2 KB value that once killed the device actor and bricked the agent for good
    "nested-1000": (lambda image: b"[" * 1000 + b"]" * 1000, "nests 1000 levels deep"),
    "unknown-type": (
        lambda image: {"type": "docker", "containers": [{"name": "web", "image": image}]},
        "`type`",
    ),
    "33-containers": (
        lambda image: many_containers(image, MAX_CONTAINERS + 1),
        "at `containers`",
    ),
    "bad-bytes": (lambda image: b"\xff\x00{garbage", "not valid JSON"),
    "bad-image": (
        lambda image: httpd_score(image="x/../../../containers/NAME", port=8080),
        "at `containers[0].image`",
    ),
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_malformed_update_is_not_stored_and_the_last_good_revision_keeps_running(
    world: AgentWorld, kind: str
) -> None:
    make, words = HOSTILE[kind]
    app = world.start_agent()
    port = free_port()
    good = world.put_desired("web", httpd_score(image=world.podman.image, port=port))
    world.wait_state("web", lambda s: running(s, good))
    before = world.container("web")
    assert before is not None
    stored = world.config().state_dir / "desired-state.json"
    stored_before = stored.read_bytes()

    value = make(world.podman.image)
    raw = value if isinstance(value, bytes) else msgspec.json.encode(value)
    bad = world.put_desired("web", raw)
    state = world.wait_state("web", lambda s: s.desired_revision == bad)
    assert state.phase.value == "Failed"
    assert state.message is not None
    assert "malformed" in state.message
    assert words in state.message
    assert state.running_revision == good  # what runs instead, said so
    assert stored.read_bytes() == stored_before  # never persisted
    assert fetch(port) == "hello from fleet\n"

    # A restart (the reboot that used to loop) runs the last good revision and reports
    # the malformed one again, without restarting the container.
    world.stop_agent(app)
    world.start_agent()
    again = world.wait_state(
        "web", lambda s: s.desired_revision == bad and s.updated_at > state.updated_at
    )
    assert (again.phase.value, again.running_revision) == ("Failed", good)
    after = world.container("web")
    assert after is not None
    assert after["Id"] == before["Id"]
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]
    assert fetch(port) == "hello from fleet\n"


def test_a_malformed_first_entry_is_failed_and_nothing_is_made(world: AgentWorld) -> None:
    world.start_agent()
    bad = world.put_desired("web", b"[" * 1000 + b"]" * 1000)
    state = world.wait_state("web", lambda s: s.phase.value == "Failed")
    assert state.desired_revision == bad
    assert state.running_revision is None
    assert world.owned("web") == []
    assert not (world.config().state_dir / "desired-state.json").exists()
