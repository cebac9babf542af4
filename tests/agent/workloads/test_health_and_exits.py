"""Health checks and ended containers on real podman: the report says healthy,
unhealthy or starting (the phase stays), and how a container that stays ended ended."""

from __future__ import annotations

from typing import Any

import pytest

from tests.agent.conftest import AgentWorld, running

pytestmark = pytest.mark.podman


def checked(image: str, check: list[str], **health: Any) -> dict[str, Any]:
    script = "trap 'exit 0' TERM; sleep 300 & wait"
    container = {
        "name": "app", "image": image, "command": ["sh", "-c", script],
        "healthcheck": {"command": check, **health},
    }  # fmt: skip
    return {"type": "podman", "containers": [container]}


@pytest.mark.timeout(120)
def test_health_is_reported_and_follows_the_check(world: AgentWorld) -> None:
    world.start_agent()
    image = world.podman.image
    good = world.put_desired("good", checked(image, ["true"], interval_s=1))
    world.wait_state("good", lambda s: running(s, good) and s.health == "healthy", timeout=40)

    # fails from the start; 2 failures in a row make it unhealthy (the agent runs the
    # check every interval_s: podman's own timer needs systemd, and is off)
    bad = world.put_desired(
        "bad", checked(image, ["sh", "-c", "test -e /tmp/ok"], interval_s=2, retries=2)
    )
    state = world.wait_state("bad", lambda s: running(s, bad) and s.health is not None, timeout=40)
    assert state.health in ("starting", "unhealthy")
    state = world.wait_state("bad", lambda s: s.health == "unhealthy", timeout=40)
    inspected = world.container("bad", "app")
    assert inspected is not None
    health = inspected["State"].get("Health") or inspected["State"]["Healthcheck"]
    assert health["FailingStreak"] >= 2  # podman's verdict: its retries applied
    assert state.phase.value == "Running"  # the seven phases stay: health is apart

    # the check passes once the file exists: healthy again, in the same container
    world.podman.podman("exec", f"fleet-{world.device}-bad-app", "sh", "-c", "echo > /tmp/ok")
    world.wait_state("bad", lambda s: s.health == "healthy", timeout=40)


@pytest.mark.timeout(90)
def test_a_start_period_reports_starting(world: AgentWorld) -> None:
    world.start_agent()
    rev = world.put_desired(
        "slow", checked(world.podman.image, ["false"], interval_s=1, start_period_s=3600)
    )
    state = world.wait_state("slow", lambda s: running(s, rev) and s.health is not None, timeout=40)
    assert state.health == "starting"


def once(image: str, code: int) -> dict[str, Any]:
    container = {"name": "job", "image": image, "command": ["sh", "-c", f"exit {code}"],
                 "restart_policy": "no"}  # fmt: skip
    return {"type": "podman", "containers": [container]}


@pytest.mark.timeout(90)
def test_a_container_that_runs_once_reports_how_it_ended(world: AgentWorld) -> None:
    world.start_agent()
    image = world.podman.image
    ok = world.put_desired("ok", once(image, 0))
    state = world.wait_state(
        "ok", lambda s: s.desired_revision == ok and s.exit_code is not None, timeout=40
    )
    assert (state.phase.value, state.exit_code, state.health) == ("Running", 0, None)

    bad = world.put_desired("bad", once(image, 3))
    state = world.wait_state(
        "bad", lambda s: s.desired_revision == bad and s.exit_code is not None, timeout=40
    )
    assert (state.phase.value, state.exit_code) == ("Failed", 3)
    assert state.message is not None
    assert "3" in state.message
