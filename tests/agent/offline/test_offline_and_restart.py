"""Offline autonomy, catching up after NATS returns, and restarts that restart nothing."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from tests.agent.conftest import AgentWorld, fetch, httpd_score, running
from tests.fixtures.podman import free_port

pytestmark = pytest.mark.podman


def test_nats_down_keeps_serving_repairs_offline_and_catches_up(world: AgentWorld) -> None:
    world.start_agent()
    port = free_port()
    rev = world.put_desired("web", httpd_score(image=world.podman.image, port=port))
    world.wait_state("web", lambda s: running(s, rev))

    world.nats.stop()
    time.sleep(1.0)
    assert fetch(port) == "hello from fleet\n"
    # drift while offline is still repaired, from the agent's own copy of the desired state
    world.podman.podman("rm", "-f", "-t", "0", f"fleet-{world.device}-web-web")
    world.wait_container("web", lambda c: c is not None and c["State"]["Running"], timeout=10)
    assert fetch(port) == "hello from fleet\n"
    back_at = dt.datetime.now(dt.UTC)
    world.nats.start()

    # a change written as soon as the server is back reaches the agent too
    rev2 = world.put_desired(
        "web", httpd_score(image=world.podman.image, port=port, env={"AFTER": "outage"})
    )
    state = world.wait_state("web", lambda s: running(s, rev2), timeout=30)
    assert state.updated_at >= back_at
    container = world.container("web")
    assert container is not None
    assert "AFTER=outage" in container["Config"]["Env"]


def test_agent_restart_adopts_running_containers_without_restarting_them(
    world: AgentWorld,
) -> None:
    app = world.start_agent()
    port = free_port()
    rev = world.put_desired("web", httpd_score(image=world.podman.image, port=port))
    world.wait_state("web", lambda s: running(s, rev))
    before = world.container("web")
    assert before is not None
    world.stop_agent(app)
    assert fetch(port) == "hello from fleet\n"  # stopping the agent leaves workloads running

    world.start_agent()
    time.sleep(2.5)  # more than two resync intervals: time to (wrongly) restart it
    world.wait_state("web", lambda s: running(s, rev))
    after = world.container("web")
    assert after is not None
    assert after["Id"] == before["Id"]
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]


def test_reboot_without_network_brings_workloads_back_from_state_dir(
    world: AgentWorld,
) -> None:
    app = world.start_agent()
    port = free_port()
    rev = world.put_desired("web", httpd_score(image=world.podman.image, port=port))
    world.wait_state("web", lambda s: running(s, rev))
    world.stop_agent(app)
    world.nats.stop()
    world.podman.remove_all_containers()  # the "reboot": nothing runs any more

    world.start_agent()  # NATS is unreachable
    assert fetch(port, timeout=20) == "hello from fleet\n"
    world.nats.start()
    world.wait_state("web", lambda s: running(s, rev), timeout=30)
