"""Containers labelled as the device's own, of a deployment it knows nothing of, are removed;
anything else is never touched."""

from __future__ import annotations

import logging
from typing import cast

import pytest

from tests.agent.conftest import AgentWorld, running, sleep_score, wait_for

pytestmark = pytest.mark.podman

MANAGED = "fleet.nationtech.io/managed-by=fleet-agent"


def run_labelled(world: AgentWorld, name: str, *labels: str) -> None:
    args = ["run", "-d", "--name", name, "--label", world.podman.session_label]
    for label in labels:
        args += ["--label", label]
    world.podman.podman(*args, world.podman.image, "sleep", "300")


def test_orphans_are_removed_and_reported_and_others_never_touched(world: AgentWorld) -> None:
    dev = f"fleet.nationtech.io/device={world.device}"
    # Left by a crash whose state file was lost too: no entry, nothing on disk.
    for container in ("x", "y"):
        run_labelled(
            world,
            f"fleet-{world.device}-ghost-{container}",
            MANAGED,
            dev,
            "fleet.nationtech.io/deployment=ghost",
            f"fleet.nationtech.io/container={container}",
            "fleet.nationtech.io/revision=7",
        )
    # Not ours: another device's, one without the managed-by label, one with no labels.
    run_labelled(
        world,
        "other-device",
        MANAGED,
        "fleet.nationtech.io/device=someone-else",
        "fleet.nationtech.io/deployment=ghost",
    )
    run_labelled(world, "not-managed", dev, "fleet.nationtech.io/deployment=ghost")
    run_labelled(world, "plain")
    revision = world.put_desired("web", sleep_score("a", image=world.podman.image))

    world.start_agent()
    world.wait_state("web", lambda s: running(s, revision))
    wait_for(lambda: world.owned("ghost") == [], what="the orphans removed")
    state = world.wait_state("ghost", lambda s: s.phase.value == "Removed")
    assert state.desired_revision == 7  # the revision they were made for
    names = {cast("list[str]", c["Names"])[0] for c in world.podman.containers()}
    assert {"other-device", "not-managed", "plain"} <= names
    assert len(world.owned("web")) == 1


def test_a_deployment_whose_entry_turned_malformed_is_never_swept(
    world: AgentWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """The sweep runs every resync (1 s here); it must spare a deployment whose last
    entry is malformed: the last valid revision keeps running."""
    caplog.set_level(logging.DEBUG, logger="fleet.actors.agent.sweeper")
    world.start_agent()
    good = world.put_desired("web", sleep_score("a", image=world.podman.image))
    world.wait_state("web", lambda s: running(s, good))
    [before] = world.owned("web")
    world.put_desired("web", b"not json")
    world.wait_state("web", lambda s: s.phase.value == "Failed")

    def sweeps() -> int:
        return sum(r.getMessage().startswith("swept") for r in caplog.records)

    seen = sweeps()
    wait_for(lambda: sweeps() >= seen + 3, what="three more sweeps")
    [after] = world.owned("web")
    assert after["Id"] == before["Id"]
    assert after["State"] == "running"
