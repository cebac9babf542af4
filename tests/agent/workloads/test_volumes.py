"""Named volumes on real podman: data survives an update, read-only holds, and a volume
goes with its deployment only when the score asked."""

from __future__ import annotations

from typing import Any

import pytest

from tests.agent.conftest import AgentWorld, running
from tests.agent.workloads.conftest import volumes

pytestmark = pytest.mark.podman


def volume_score(image: str, *, version: str, remove: bool = False) -> dict[str, Any]:
    """Writes its version into /data once, appends it to /data/log, then sleeps."""
    script = f"echo {version} >> /data/log; trap 'exit 0' TERM; sleep 300 & wait"
    return {
        "type": "podman",
        "containers": [
            {
                "name": "app",
                "image": image,
                "command": ["sh", "-c", script],
                "volumes": [
                    {"name": "data", "path": "/data", "remove_with_deployment": remove},
                    {"name": "cache", "path": "/cache"},
                ],
            },
            {
                "name": "reader",
                "image": image,
                "command": ["sleep", "300"],
                "volumes": [
                    {
                        "name": "data",
                        "path": "/data",
                        "read_only": True,
                        "remove_with_deployment": remove,
                    }
                ],
            },
        ],
    }


def exec_in(world: AgentWorld, deployment: str, container: str, *cmd: str) -> tuple[int, str]:
    proc = world.podman.podman(
        "exec", f"fleet-{world.device}-{deployment}-{container}", *cmd, check=False
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.timeout(120)
def test_volume_data_survives_an_image_update_and_goes_only_when_asked(world: AgentWorld) -> None:
    world.start_agent()
    image = world.podman.image
    rev1 = world.put_desired("cam", volume_score(image, version="v1", remove=True))
    world.wait_state("cam", lambda s: running(s, rev1), timeout=40)
    first = world.container("cam", "app")
    assert first is not None
    assert exec_in(world, "cam", "app", "sh", "-c", "echo keep > /data/mine")[0] == 0
    code, out = exec_in(world, "cam", "reader", "sh", "-c", "echo no > /data/other")
    assert code != 0
    assert "Read-only" in out

    updated = world.podman.push_tag("volumes-v2")  # the same bytes under a new image name
    rev2 = world.put_desired("cam", volume_score(updated, version="v2", remove=True))
    world.wait_state("cam", lambda s: running(s, rev2), timeout=40)
    second = world.container("cam", "app")
    assert second is not None
    assert second["Id"] != first["Id"]
    assert second["ImageName"] == updated
    assert exec_in(world, "cam", "app", "cat", "/data/mine") == (0, "keep\n")
    assert exec_in(world, "cam", "reader", "cat", "/data/log") == (0, "v1\nv2\n")

    names = {f"fleet-{world.device}-cam-data", f"fleet-{world.device}-cam-cache"}
    found = volumes(world)
    assert set(found) == names
    assert (
        found[f"fleet-{world.device}-cam-data"]["fleet.nationtech.io/remove-with-deployment"]
        == "true"
    )

    world.delete_desired("cam")
    world.wait_state("cam", lambda s: s.phase.value == "Removed", timeout=40)
    # data was marked to go with the deployment; cache was not, and stays
    assert set(volumes(world)) == {f"fleet-{world.device}-cam-cache"}


@pytest.mark.timeout(90)
def test_two_deployments_never_share_a_volume(world: AgentWorld) -> None:
    world.start_agent()
    image = world.podman.image
    one = world.put_desired("one", volume_score(image, version="one"))
    two = world.put_desired("two", volume_score(image, version="two"))
    world.wait_state("one", lambda s: running(s, one), timeout=40)
    world.wait_state("two", lambda s: running(s, two), timeout=40)
    assert exec_in(world, "one", "reader", "cat", "/data/log") == (0, "one\n")
    assert exec_in(world, "two", "reader", "cat", "/data/log") == (0, "two\n")
