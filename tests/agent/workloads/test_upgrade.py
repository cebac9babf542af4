"""An agent of this release started on the state the release before issue 14 left (its
desired-state file and its running container) adopts that container: no replacement."""

from __future__ import annotations

import base64

import pytest

from tests.agent.conftest import AgentWorld, running

pytestmark = pytest.mark.podman

# Written by the release before issue 14 (commit 5fbfe22), pinned here: the value, its
# container's spec hash, and the shape of its desired-state file.
OLD_VALUE = (
    b'{"type":"podman","containers":[{"name":"web","image":"localhost/busybox:test",'
    b'"command":["sleep","300"],"env":{"V":"1"},"restart_policy":"on-failure"}]}'
)
OLD_SPEC_HASH = "62e5f6feee16a4c2"


def old_state_file(revision: int) -> bytes:
    value = base64.b64encode(OLD_VALUE).decode()
    return (
        f'{{"version":1,"entries":{{"web":{{"revision":{revision},"value":"{value}"}}}},'
        '"removing":{}}'
    ).encode()


@pytest.mark.timeout(90)
def test_an_agent_adopts_what_the_previous_release_left_running(world: AgentWorld) -> None:
    revision = world.put_desired("web", OLD_VALUE)
    state_dir = world.state_root / world.device
    state_dir.mkdir(parents=True)
    (state_dir / "desired-state.json").write_bytes(old_state_file(revision))
    labels = {
        "fleet.nationtech.io/managed-by": "fleet-agent",
        "fleet.nationtech.io/device": world.device,
        "fleet.nationtech.io/deployment": "web",
        "fleet.nationtech.io/container": "web",
        "fleet.nationtech.io/spec-hash": OLD_SPEC_HASH,
        "fleet.nationtech.io/revision": str(revision),
    }
    args = ["run", "-d", "--name", f"fleet-{world.device}-web-web", "--env", "V=1"]
    args += ["--restart", "on-failure", "--label", world.podman.session_label]
    for key, value in labels.items():
        args += ["--label", f"{key}={value}"]
    old_id = world.podman.podman(*args, "localhost/busybox:test", "sleep", "300").stdout.strip()

    world.start_agent()
    world.wait_state("web", lambda s: running(s, revision), timeout=40)
    [container] = world.owned("web")
    assert container["Id"] == old_id  # adopted, never replaced
    assert container["State"] == "running"
