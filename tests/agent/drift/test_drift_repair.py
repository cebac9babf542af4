"""Containers stopped, killed or removed by hand come back within seconds."""

from __future__ import annotations

import pytest

from tests.agent.conftest import AgentWorld, fetch, httpd_score, running
from tests.fixtures.podman import free_port

pytestmark = pytest.mark.podman


@pytest.mark.parametrize(
    "tamper",
    [("kill",), ("stop", "-t", "0"), ("rm", "-f", "-t", "0")],
    ids=["killed", "stopped", "removed"],
)
def test_tampered_container_is_restored(world: AgentWorld, tamper: tuple[str, ...]) -> None:
    world.start_agent()
    port = free_port()
    rev = world.put_desired("web", httpd_score(image=world.podman.image, port=port))
    world.wait_state("web", lambda s: running(s, rev))
    name = f"fleet-{world.device}-web-web"
    before = world.container("web", "web")
    assert before is not None
    done = world.podman.podman(*tamper, name, check=False)
    # The agent never starts a container that has run (it leaves a stopped one to podman
    # for RESTART_GRACE, then makes a fresh one): a start racing `podman stop` failed the
    # stop ("refusing to clean up"), and one racing `podman rm -f` leaked the host port
    # for good, so the container made next stayed `created` (the flaky `removed` case).
    assert done.returncode == 0, done.stderr
    after = world.wait_container(
        "web", lambda c: c is not None and c["State"]["Running"], timeout=10
    )
    assert after is not None
    # restored, not untouched: a new container, or the same one started again
    assert (after["Id"], after["State"]["StartedAt"]) != (
        before["Id"],
        before["State"]["StartedAt"],
    )
    assert fetch(port, timeout=10) == "hello from fleet\n"
    world.wait_state("web", lambda s: running(s, rev))
