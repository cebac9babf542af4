"""Progressive rollouts against the real operator, a real nats-server and the API emulator.

Simulated devices report what the test says; every write to desired-state is tapped
(:class:`DesiredTap`), so each check is about every write ever made, not the last values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fleet.actors.operator.app import Operator
from fleet.contracts import ANNOTATION_ROLLOUT_APPROVED, Phase, convert_score, encode_score
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from tests.fixtures.kube import GROUP, VERSION, KubeCluster

from ..sim import SCORE, SCORE_V2, Fleet, eventually
from .tap import DesiredTap

pytestmark = pytest.mark.timeout(120)

SEL = {"matchLabels": {"role": "edge"}}
V1, V2 = encode_score(convert_score(SCORE)), encode_score(convert_score(SCORE_V2))
LAB = ["lab1", "lab2"]
REST = [f"d{i}" for i in range(8)]
CANARY = {
    "batches": [{"selector": {"matchLabels": {"site": "lab"}}}, {"size": "50%"}],
    "failureThreshold": 1,
    "autoRollback": True,
}
LIVE = 60.0  # liveness timeout: the simulated devices stay reachable throughout


@pytest.fixture
def tap(bus: Bus, event_loop_thread: EventLoopThread) -> Iterator[DesiredTap]:
    tap = DesiredTap(bus, event_loop_thread).start()
    yield tap
    tap.stop()


def values(fleet: Fleet) -> dict[str, bytes]:
    out = {}
    for key, entry in fleet.desired().items():
        device, _, name = key.partition(".")
        if name == "web":
            out[device] = bytes(entry.value)
    return out


def holding(fleet: Fleet, value: bytes) -> set[str]:
    return {d for d, v in values(fleet).items() if v == value}


def rollout(kube: KubeCluster) -> dict[str, Any]:
    status: dict[str, Any] = kube.status("ns", "web").get("rollout") or {}
    return status


def revisions(kube: KubeCluster) -> dict[int, dict[str, Any]]:
    listing: dict[str, Any] = kube.custom.list_namespaced_custom_object(  # type: ignore[assignment]
        GROUP, VERSION, "ns", "deploymentrevisions"
    )
    return {item["spec"]["revision"]: item for item in listing["items"]}


def annotate(kube: KubeCluster, key: str, value: str | None) -> None:
    kube.custom.patch_namespaced_custom_object(
        GROUP, VERSION, "ns", "deployments", "web", {"metadata": {"annotations": {key: value}}}
    )


def run_all_at_once(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> Operator:
    """Ten devices (two at site=lab) run revision 1, written at once (no rollout)."""
    fleet.join(LAB, {"role": "edge", "site": "lab"})
    fleet.join(REST, {"role": "edge", "site": "prod"})
    operator = start_operator(liveness_timeout=LIVE)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: len(holding(fleet, V1)) == 10)
    fleet.report(LAB + REST, "web", Phase.RUNNING)
    eventually(lambda: kube.aggregate("ns", "web").get("running") == 10)
    eventually(lambda: revisions(kube)[1].get("status", {}).get("outcome") == "Complete")
    return operator


def given_at_least(tap: DesiredTap, count: int) -> bool:
    return len(tap.devices_given("web", V2)) >= count


def report_running(fleet: Fleet, devices: set[str]) -> None:
    fleet.report(sorted(devices), "web", Phase.RUNNING)


def test_a_good_score_goes_batch_by_batch_canary_first(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator], tap: DesiredTap
) -> None:
    run_all_at_once(kube, fleet, start_operator)
    kube.patch_deployment_spec("ns", "web", {"score": SCORE_V2, "rollout": CANARY})

    eventually(lambda: holding(fleet, V2) == set(LAB))
    eventually(lambda: rollout(kube).get("phase") == "Progressing")
    assert rollout(kube)["revision"] == 2
    assert rollout(kube)["currentBatch"] == 1
    assert tap.devices_given("web", V2) == set(LAB)  # nobody else, ever

    report_running(fleet, set(LAB))
    eventually(lambda: len(holding(fleet, V2)) == 7)  # the lab, then 50% of 10
    second = holding(fleet, V2) - set(LAB)
    assert tap.devices_given("web", V2) == set(LAB) | second
    eventually(lambda: rollout(kube).get("currentBatch") == 2)

    report_running(fleet, second)
    eventually(lambda: len(holding(fleet, V2)) == 10)
    report_running(fleet, holding(fleet, V2) - set(LAB) - second)
    eventually(lambda: rollout(kube).get("phase") == "Complete")
    assert rollout(kube)["stableRevision"] == 1
    eventually(lambda: revisions(kube)[2].get("status", {}).get("outcome") == "Complete")
    assert max(tap.puts_per_device("web", V2).values()) == 1  # no entry written twice
    eventually(lambda: kube.aggregate("ns", "web").get("running") == 10)


def test_a_bad_score_halts_at_the_canary_and_rolls_back(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator], tap: DesiredTap
) -> None:
    run_all_at_once(kube, fleet, start_operator)
    kube.patch_deployment_spec("ns", "web", {"score": SCORE_V2, "rollout": CANARY})
    eventually(lambda: holding(fleet, V2) == set(LAB))

    fleet.report(["lab1"], "web", Phase.FAILED, message="pulling localhost/busybox:v2: not found")
    eventually(lambda: rollout(kube).get("phase") == "RolledBack")
    eventually(lambda: holding(fleet, V1) == set(LAB + REST))  # the canaries are back
    assert tap.devices_given("web", V2) == set(LAB)  # nobody outside the canary, ever
    assert revisions(kube)[2]["status"]["outcome"] == "RolledBack"
    assert "failureThreshold" in revisions(kube)[2]["status"]["reason"]
    progressing = [c for c in kube.status("ns", "web")["conditions"] if c["type"] == "Progressing"]
    assert len(progressing) == 1
    assert progressing[0]["status"] == "False"
    assert progressing[0]["reason"] == "RolledBack"

    # A device joining now gets the stable score, never the rolled-back one.
    fleet.join(["late"], {"role": "edge", "site": "lab"})
    eventually(lambda: values(fleet).get("late") == V1)
    assert "late" not in tap.devices_given("web", V2)


def test_the_rollout_goes_on_where_it_was_after_an_operator_restart(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator], tap: DesiredTap
) -> None:
    operator = run_all_at_once(kube, fleet, start_operator)
    manual = {"batches": [{"size": 2}, {"size": 3}], "approval": "manual"}
    kube.patch_deployment_spec("ns", "web", {"score": SCORE_V2, "rollout": manual})
    eventually(lambda: len(holding(fleet, V2)) == 2)
    first = holding(fleet, V2)
    report_running(fleet, first)
    eventually(lambda: rollout(kube).get("phase") == "WaitingForApproval")
    assert len(tap.devices_given("web", V2)) == 2  # waiting: nothing more written

    annotate(kube, ANNOTATION_ROLLOUT_APPROVED, "2/2")
    eventually(lambda: len(holding(fleet, V2)) == 5)
    second = holding(fleet, V2) - first
    eventually(lambda: rollout(kube).get("currentBatch") == 2)

    operator.stop()  # mid-batch: the second batch is written, none of it reported yet
    start_operator(liveness_timeout=LIVE)
    eventually(lambda: rollout(kube).get("currentBatch") == 2, timeout=20)
    report_running(fleet, second)
    eventually(lambda: rollout(kube).get("phase") == "WaitingForApproval")
    assert tap.devices_given("web", V2) == first | second  # the third batch waits
    annotate(kube, ANNOTATION_ROLLOUT_APPROVED, "2/3")
    eventually(lambda: len(holding(fleet, V2)) == 10)
    report_running(fleet, holding(fleet, V2) - first - second)
    eventually(lambda: rollout(kube).get("phase") == "Complete")
    assert max(tap.puts_per_device("web", V2).values()) == 1  # no entry written twice


@pytest.mark.parametrize(
    ("rollout_spec", "field"),
    [
        ({"batches": [{"size": "60%"}, {"size": "50%"}]}, "spec.rollout.batches"),
        ({"batches": [{"size": 1}], "successThreshold": "150%"}, "spec.rollout.successThreshold"),
        ({"batches": [{"size": 1}], "failureThreshold": "101%"}, "spec.rollout.failureThreshold"),
        (
            {"batches": [{"size": 1}], "pauseBetweenBatches": "soon"},
            "spec.rollout.pauseBetweenBatches",
        ),
        (
            {"batches": [{"selector": {"matchLabels": {"bad key!": "x"}}}]},
            "spec.rollout.batches[0].selector.matchLabels",
        ),
    ],
)
def test_a_bad_rollout_is_refused_naming_the_field_and_nothing_is_written(  # noqa: PLR0917
    kube: KubeCluster,
    fleet: Fleet,
    start_operator: Callable[..., Operator],
    tap: DesiredTap,
    rollout_spec: dict[str, Any],
    field: str,
) -> None:
    run_all_at_once(kube, fleet, start_operator)
    kube.patch_deployment_spec("ns", "web", {"score": SCORE_V2, "rollout": rollout_spec})
    eventually(lambda: kube.ready("ns", "web").get("reason") == "InvalidSpec")
    assert field in kube.ready("ns", "web")["message"]
    assert tap.devices_given("web", V2) == set()
    assert holding(fleet, V1) == set(LAB + REST)  # what was stored is kept


def test_a_batch_whose_selector_matches_nothing_waits_and_says_which(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator], tap: DesiredTap
) -> None:
    operator = run_all_at_once(kube, fleet, start_operator)
    mars = {"batches": [{"selector": {"matchLabels": {"site": "mars"}}}], "failureThreshold": 1}
    kube.patch_deployment_spec("ns", "web", {"score": SCORE_V2, "rollout": mars})
    eventually(lambda: "matches no targeted device" in rollout(kube).get("reason", ""))
    assert "spec.rollout.batches[0].selector" in rollout(kube)["reason"]
    assert tap.devices_given("web", V2) == set()
    # One appears, heartbeat first: a device not heard from yet is unreachable, and a
    # batch of unreachable devices only (skipped) passes at once.
    fleet.beat(["rover"])
    # Heard first by the operator, not only written first: two buckets are two watches,
    # whose deliveries are not ordered between them (the heartbeats' is batched every
    # 50 ms), and a device whose info came first is not heard from yet.
    eventually(lambda: operator.summary()["heartbeats"] == len(LAB + REST) + 1)
    fleet.info(["rover"], {"role": "edge", "site": "mars"})
    eventually(lambda: values(fleet).get("rover") == V2)
    assert tap.devices_given("web", V2) == {"rover"}


def test_unreachable_devices_are_skipped_and_never_stall_a_batch(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator], tap: DesiredTap
) -> None:
    online = [f"on{i}" for i in range(4)]
    offline = [f"off{i}" for i in range(2)]
    fleet.join(online, {"role": "edge"})
    fleet.info(offline, {"role": "edge"})
    fleet.beat(offline, age=3600)  # silent for an hour
    start_operator()
    spec = {
        "selector": SEL,
        "score": SCORE,
        "rollout": {"batches": [{"size": "50%"}], "failureThreshold": 1},
    }
    kube.create_deployment("ns", "web", spec=spec)
    eventually(lambda: kube.aggregate("ns", "web").get("unreachable") == 2)
    eventually(lambda: len(values(fleet)) >= 3)
    first = set(values(fleet))
    report_running(fleet, first & set(online))
    eventually(lambda: len(values(fleet)) == 6)  # the offline ones did not hold it up
    report_running(fleet, set(values(fleet)) & set(online))
    eventually(lambda: rollout(kube).get("phase") == "Complete")
    assert set(offline) <= tap.devices_given("web", V1)  # written: they catch up when back


@pytest.mark.parametrize("attempt", range(3))  # a race: each attempt is a fresh chance
def test_a_batch_is_done_on_its_devices_running_the_new_entry_never_the_old_one(
    kube: KubeCluster,
    fleet: Fleet,
    start_operator: Callable[..., Operator],
    tap: DesiredTap,
    attempt: int,
) -> None:
    """Found by the real-agent test: the write of a batch's entries completed before the
    device actors' answers to the new expectation came, and the class they had for the
    old entry (running) counted against the new one: the next batch started at once."""
    devices = [f"d{i}" for i in range(11)]
    fleet.join(devices, {"role": "edge"})
    start_operator(liveness_timeout=LIVE)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: len(tap.devices_given("web", V1)) == 11)
    fleet.report(devices, "web", Phase.RUNNING)
    eventually(lambda: kube.aggregate("ns", "web").get("running") == 11)
    kube.patch_deployment_spec(
        "ns", "web", {"score": SCORE_V2, "rollout": {"batches": [{"size": 1}] * 10}}
    )
    ran: set[str] = set()
    for k in range(1, 12):
        eventually(functools.partial(given_at_least, tap, k))
        given = tap.devices_given("web", V2)
        assert len(given) == k, f"batch {k}: {sorted(given - ran)} given before {ran} ran"
        fleet.report(sorted(given - ran), "web", Phase.RUNNING)
        ran |= given
    eventually(lambda: rollout(kube).get("phase") == "Complete")


def test_a_recreated_deployment_does_not_inherit_its_namesakes_revisions(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator], tap: DesiredTap
) -> None:
    """The old Deployment's revisions may outlive it (garbage collection is not instant;
    the emulator has none): the new one numbers past them and never rolls back to them."""
    run_all_at_once(kube, fleet, start_operator)
    kube.delete_deployment("ns", "web")
    eventually(lambda: kube.deployment("ns", "web") is None)
    eventually(lambda: values(fleet) == {})
    before = len(tap.writes("web"))
    spec = {"selector": SEL, "score": SCORE_V2, "rollout": CANARY}
    kube.create_deployment("ns", "web", spec=spec)
    eventually(lambda: holding(fleet, V2) == set(LAB))
    uid = (kube.deployment("ns", "web") or {})["metadata"]["uid"]
    mine = {n: r for n, r in revisions(kube).items()
            if r["metadata"]["ownerReferences"][0]["uid"] == uid}  # fmt: skip
    assert sorted(mine) == [2]  # r1 is the old one's name
    assert "stableRevision" not in rollout(kube)

    fleet.report(["lab1"], "web", Phase.FAILED, message="not found")
    eventually(lambda: rollout(kube).get("phase") == "RolledBack")
    eventually(lambda: values(fleet) == {})  # no stable revision of its own: none at all
    assert all(w.value != V1 for w in tap.writes("web")[before:])
