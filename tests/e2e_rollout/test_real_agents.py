"""Issue 13's acceptance test: progressive rollouts on real agents running real podman.

Three ``fleet-agent`` processes (one at ``site=lab``), the real ``fleet-operator``, a real
nats-server, the API emulator and the private podman world with its local registry
(:mod:`.world`). A good score goes out batch by batch (the lab, then one device, then
the rest), each batch written only once the one before it ran the new score; a score
whose image tag does not exist fails its pull at the lab, the rollout halts there and
rolls back, and no other device was ever written it. The proofs come from every write
and report as they happened (:class:`.world.Timeline`), from the Kubernetes resources
and from ``podman inspect`` of the containers the agents made.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.contracts import DeploymentState, Phase, convert_score, encode_score
from fleet.devtools.podman_sandbox import PodmanEnv
from tests.budgets import CONVERGE_S, budget
from tests.chaos.world import wait

from .world import SELECTOR, RolloutWorld, Timeline, rollout_world

pytestmark = [pytest.mark.podman, pytest.mark.timeout(90)]

LAB = "lab-1"
LABELS = {LAB: {"site": "lab"}, "field-1": {"site": "field"}, "field-2": {"site": "field"}}
CANARY = {
    "batches": [{"selector": {"matchLabels": {"site": "lab"}}}, {"size": 1}],
    "failureThreshold": 1,
    "autoRollback": True,
}


def score(image: str, *, marker: str) -> dict[str, Any]:
    """One long-running busybox container; ``marker`` is in its env and its output."""
    return {
        "type": "podman",
        "containers": [{
            "name": "main",
            "image": image,
            "command": ["sh", "-c", "trap 'exit 0' TERM; echo $MARKER; sleep 3600 & wait"],
            "env": {"MARKER": marker},
        }],
    }  # fmt: skip


def value(spec: dict[str, Any]) -> bytes:
    """The desired-state value the operator writes for ``spec``."""
    return encode_score(convert_score(spec))


@pytest.fixture
def world(tmp_path: Path, podman: PodmanEnv) -> Iterator[RolloutWorld]:
    """Every device runs revision 1 of ``web`` (written at once: no rollout)."""
    with rollout_world(root=tmp_path, podman=podman, labels=LABELS) as w:
        w.create("web", {"selector": SELECTOR, "score": score(podman.image, marker="v1")})
        w.wait_running("web", timeout=CONVERGE_S)
        wait(
            lambda: w.revision_outcomes().get(1) == "Complete",
            timeout=budget(20), what="DeploymentRevision web-r1 Complete",
        )  # fmt: skip
        yield w


@pytest.fixture
def timeline(world: RolloutWorld) -> Iterator[Timeline]:
    tap = Timeline(world).start()
    yield tap
    tap.stop()


def runs(world: RolloutWorld, device: str, *, image: str, marker: str) -> dict[str, Any]:
    """The device's container, if it runs ``image`` with ``marker``; else {}."""
    found = world.container(device, "web", "main")
    running = found.get("State", {}).get("Status") == "running"
    ok = (
        running
        and found.get("ImageName") == image
        and f"MARKER={marker}" in found.get("Config", {}).get("Env", [])
    )
    return found if ok else {}


def test_a_good_score_goes_batch_by_batch(world: RolloutWorld, timeline: Timeline) -> None:
    image = world.podman.push_tag("v2")  # a tag no device has: a real pull at each
    v2 = value(score(image, marker="v2"))
    world.patch_spec("web", {"score": score(image, marker="v2"), "rollout": CANARY})

    # The reports stored when Complete is first seen: the operator decided on them or on
    # earlier ones, so every device must already run revision 2 there.
    _, reported = wait(
        lambda: (r := world.rollout("web")).get("revision") == 2
        and r.get("phase") == "Complete" and (r, world.reports()),
        timeout=budget(60), what=f"rollout of revision 2 Complete ({world.rollout('web')})",
    )  # fmt: skip
    entries = world.desired()
    for device in world.devices:
        report = reported[device, "web"]
        assert (report.phase, report.desired_revision) == (
            Phase.RUNNING, entries[device, "web"].revision
        ), f"Complete while {device} reported {report}"  # fmt: skip

    # Batch by batch: the lab, then one device, then the last, each written once, and
    # only after the batch before it ran the new score (its Running report came first).
    order = sorted(world.devices, key=lambda d: timeline.index_of_write(d, "web", v2))
    assert order[0] == LAB, timeline.render()
    assert timeline.puts_per_device("web", v2) == dict.fromkeys(world.devices, 1)
    for before, after in itertools.pairwise(order):
        at = entries[before, "web"].revision
        ran = timeline.index_of_report(before, "web", phase=Phase.RUNNING, revision=at.__eq__)
        assert 0 <= ran < timeline.index_of_write(after, "web", v2), (
            f"{after} was written revision 2 before {before} ran it\n{timeline.render()}"
        )

    def all_batches_running() -> dict[str, Any] | None:
        rollout = world.rollout("web")
        return rollout if [b["running"] for b in rollout["batches"]] == [1, 1, 1] else None

    rollout = wait(
        all_batches_running, timeout=budget(10),
        what=f"every batch running in the status ({world.rollout('web')})",
    )  # fmt: skip
    assert rollout["batchCount"] == 3
    assert [b["devices"] for b in rollout["batches"]] == [1, 1, 1]
    assert rollout["stableRevision"] == 1

    # Every agent runs the new score: the image it pulled, the env it was given.
    for device in world.devices:
        assert runs(world, device, image=image, marker="v2"), world.container(device, "web", "main")
    wait(
        lambda: world.revision_outcomes().get(2) == "Complete",
        timeout=budget(20), what=f"web-r2 Complete ({world.revision_outcomes()})",
    )  # fmt: skip


def test_a_missing_tag_halts_at_the_lab_and_rolls_back(
    world: RolloutWorld, timeline: Timeline
) -> None:
    good = world.podman.image
    before = {d: world.container(d, "web", "main")["Id"] for d in world.devices}
    first = {d: entry.revision for (d, _), entry in world.desired().items()}
    v1 = value(score(good, marker="v1"))
    bad_image = f"{world.podman.registry}/busybox:does-not-exist"
    bad = score(bad_image, marker="v2")
    world.patch_spec("web", {"score": bad, "rollout": CANARY})

    wait(
        lambda: (r := world.rollout("web")).get("revision") == 2
        and r.get("phase") == "RolledBack",
        timeout=budget(60), what=f"rollout of revision 2 RolledBack ({world.rollout('web')})",
    )  # fmt: skip
    # The lab's entry is the previous score again, and its agent runs it.
    wait(
        lambda: bytes(world.desired()[LAB, "web"].value) == v1,
        timeout=budget(20), what="the lab's entry back at revision 1's score",
    )  # fmt: skip
    world.wait_running("web", timeout=CONVERGE_S)

    # Nobody outside the first batch was ever written the bad score (every write, not the
    # last values); the lab was, once, and failed its pull.
    assert timeline.devices_given("web", value(bad)) == {LAB}, timeline.render()
    assert timeline.puts_per_device("web", value(bad)) == {LAB: 1}
    others = {w.value for w in timeline.writes("web") if w.device != LAB}
    assert others <= {v1}, timeline.render()  # kept or rewritten the same, never deleted
    # Rolled back after the lab said its pull failed (at the bad entry: a revision
    # between revision 1's entry and the rollback's).
    back = world.desired()[LAB, "web"].revision
    failed = timeline.index_of_report(
        LAB, "web", phase=Phase.FAILED, revision=lambda r: first[LAB] < r < back
    )
    assert 0 <= failed < timeline.index_of_write(LAB, "web", v1), timeline.render()
    assert timeline.index_of_write(LAB, "web", value(bad)) < failed
    report = timeline.events[failed][2]
    assert isinstance(report, DeploymentState)
    assert "not found" in (report.message or ""), report

    rollout = world.rollout("web")
    assert "failureThreshold" in rollout["reason"], rollout
    assert rollout["currentBatch"] == 1, rollout
    assert world.revision_outcomes()[2] == "RolledBack"
    progressing = [
        c for c in (world.deployment("web") or {})["status"]["conditions"]
        if c["type"] == "Progressing"
    ]  # fmt: skip
    assert [(c["status"], c["reason"]) for c in progressing] == [("False", "RolledBack")]

    # Every container runs the previous score; a failed pull touched nothing (same ids).
    for device in world.devices:
        found = runs(world, device, image=good, marker="v1")
        assert found, world.container(device, "web", "main")
        assert found["Id"] == before[device], f"{device}'s container was replaced"
