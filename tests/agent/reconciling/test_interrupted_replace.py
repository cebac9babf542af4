"""The podman states a crash can leave between two steps of a replace all converge.

Each state below is what a SIGKILL of the agent leaves between two steps of
:mod:`fleet.actors.agent.replacing` (milliseconds apart, too narrow to hit by polling;
tests/agent/process/test_crash_mid_replace.py kills the real process in the wider ones).
It is built with the real adapter, then an agent starts on it.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from fleet.actors.agent.replacing import Replacer
from fleet.runtime.host.desired_store import DesiredStore, StoredDesired, StoredEntry
from fleet.runtime.podman.adapter import PodmanRuntime
from fleet.runtime.podman.port import owner_labels, temporary_name
from tests.agent.conftest import AgentWorld, running, sleep_score
from tests.scores import podman

pytestmark = pytest.mark.podman


def crash_after_create(rt: PodmanRuntime, name: str, new: str, old: str) -> None:
    """Step 1 done: the replacement exists, the old one still runs."""


def crash_after_remove(rt: PodmanRuntime, name: str, new: str, old: str) -> None:
    """Step 2 done: the old one is gone, the replacement has its temporary name."""
    rt.stop(old, timeout=0)
    rt.remove(old)


def crash_after_rename(rt: PodmanRuntime, name: str, new: str, old: str) -> None:
    """Step 3 done: the replacement has the real name and was never started."""
    crash_after_remove(rt, name, new, old)
    rt.rename(new, name)


STATES: dict[str, Callable[[PodmanRuntime, str, str, str], None]] = {
    "after-create": crash_after_create,
    "after-remove": crash_after_remove,
    "after-rename": crash_after_rename,
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("state", list(STATES))
def test_an_interrupted_replace_converges_to_one_container(world: AgentWorld, state: str) -> None:
    image = world.podman.image
    app = world.start_agent()
    first = world.put_desired("web", sleep_score("a", image=image, env={"V": "1"}))
    world.wait_state("web", lambda s: running(s, first))
    world.stop_agent(app)
    [old] = world.owned("web")

    update = sleep_score("a", image=image, env={"V": "2"})
    second = world.put_desired("web", update)
    value = msgspec.json.encode(update)
    spec = podman(value).containers[0]
    # the agent persists an entry before it starts to apply it
    store = DesiredStore(world.config().state_dir)
    store.save(StoredDesired(entries={"web": StoredEntry(revision=second, value=value)}))
    name = f"fleet-{world.device}-web-a"
    runtime = PodmanRuntime(url=world.podman.socket_url)
    try:
        labels = Replacer.labels(owner_labels(world.device, "web"), spec, second)
        new = runtime.create(name=temporary_name(name), spec=spec, labels=labels)
        STATES[state](runtime, name, new, old["Id"])
    finally:
        runtime.close()

    world.start_agent()
    world.wait_state("web", lambda s: running(s, second))
    [final] = world.owned("web")
    assert final["Names"] == [name]
    assert final["State"] == "running"
    env = world.podman.podman("inspect", final["Id"], "--format", "{{.Config.Env}}").stdout
    assert "V=2" in env
    if state == "after-rename":
        assert final["Id"] == new  # created, never started: started, not made again
