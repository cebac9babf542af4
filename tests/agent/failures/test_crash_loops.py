"""A container podman keeps restarting is reported Failed, with its exit code and output."""

from __future__ import annotations

from typing import Any

import pytest

from fleet.contracts.limits import MAX_MESSAGE_LENGTH
from tests.agent.conftest import AgentWorld, running

pytestmark = pytest.mark.podman

WINDOW = 5.0  # the crash-loop window for these tests (60 s by default)


def shell_score(image: str, script: str, *, policy: str = "always") -> dict[str, Any]:
    container = {"name": "job", "image": image, "command": ["sh", "-c", script]}
    return {"type": "podman", "containers": [{**container, "restart_policy": policy}]}


def failed_with(*words: str) -> Any:
    return lambda s: s.phase.value == "Failed" and all(w in (s.message or "") for w in words)


@pytest.mark.timeout(60)
def test_a_container_that_exits_at_once_is_failed_not_running(world: AgentWorld) -> None:
    world.start_agent(crash_window=WINDOW)
    script = "echo 'reading /etc/app.conf'; echo 'fatal: no such file' >&2; exit 3"
    revision = world.put_desired("job", shell_score(world.podman.image, script))
    state = world.wait_state("job", failed_with("crash-looping", "exit code 3"))
    assert state.desired_revision == revision
    assert "fatal: no such file" in (state.message or "")
    assert len(state.message or "") <= MAX_MESSAGE_LENGTH
    inspected = world.container("job", "job")
    assert inspected is not None
    assert inspected["RestartCount"] >= 3  # podman kept restarting it meanwhile


@pytest.mark.timeout(60)
def test_a_container_that_starts_failing_after_a_while(world: AgentWorld) -> None:
    world.start_agent(crash_window=WINDOW)
    script = (
        "if [ -e /tmp/ran ]; then echo 'cannot reconnect'; exit 4; fi; "
        "touch /tmp/ran; echo serving; sleep 3; echo 'lost the database'; exit 4"
    )
    revision = world.put_desired("job", shell_score(world.podman.image, script))
    world.wait_state("job", lambda s: running(s, revision))  # fine for 3 s
    state = world.wait_state("job", failed_with("crash-looping", "exit code 4"), timeout=30)
    assert "cannot reconnect" in (state.message or "")


@pytest.mark.timeout(60)
def test_a_crash_loop_that_stops_goes_back_to_running_after_the_window(
    world: AgentWorld,
) -> None:
    world.start_agent(crash_window=WINDOW)
    script = (
        "n=$(cat /tmp/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /tmp/n; "
        'echo "attempt $n"; if [ $n -lt 8 ]; then exit 5; fi; exec sleep 300'
    )
    revision = world.put_desired("job", shell_score(world.podman.image, script))
    failed = world.wait_state("job", failed_with("crash-looping", "exit code 5"))
    assert "attempt" in (failed.message or "")
    back = world.wait_state("job", lambda s: running(s, revision), timeout=30)
    assert back.updated_at > failed.updated_at
    # "back" came only after a whole window without a restart
    assert (back.updated_at - failed.updated_at).total_seconds() >= WINDOW - 1


@pytest.mark.timeout(60)
def test_a_failed_exit_under_restart_policy_no_is_reported(world: AgentWorld) -> None:
    world.start_agent(crash_window=WINDOW)
    script = "echo 'missing DATABASE_URL' >&2; exit 2"
    world.put_desired("job", shell_score(world.podman.image, script, policy="no"))
    state = world.wait_state("job", failed_with("exited with code 2"))
    assert "missing DATABASE_URL" in (state.message or "")
