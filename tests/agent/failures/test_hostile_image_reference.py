"""An image reference that could address another podman endpoint never reaches podman."""

from __future__ import annotations

import pytest

from tests.agent.conftest import AgentWorld, RecordingRuntime, httpd_score, running
from tests.fixtures.podman import free_port

pytestmark = pytest.mark.podman


@pytest.mark.parametrize(
    "image",
    ["x/../../../containers/NAME", "../containers/NAME", "a/b/../c:1", "IMAGE:1", "a b"],
)
def test_a_traversing_image_reference_is_refused_before_any_request(
    world: AgentWorld, image: str
) -> None:
    runtime = RecordingRuntime(url=world.podman.socket_url)
    world.start_agent(runtime=runtime)
    neighbour = world.put_desired("web", httpd_score(image=world.podman.image, port=free_port()))
    world.wait_state("web", lambda s: running(s, neighbour))
    revision = world.put_desired("evil", httpd_score(image=image, port=free_port()))
    state = world.wait_state("evil", lambda s: s.desired_revision == revision)
    assert state.phase.value == "Failed"
    assert "containers[0].image" in (state.message or "")
    assert image not in runtime.images  # not asked about, not pulled, not created
    assert runtime.images  # (the recording works: the neighbour's image is there)
    assert world.owned("evil") == []
