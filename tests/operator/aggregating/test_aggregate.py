"""The aggregate a user sees: targeted = running + pending + failed + unreachable."""

from __future__ import annotations

import time
from collections.abc import Callable

from fleet.actors.operator.app import Operator
from fleet.contracts import Phase
from tests.budgets import STATUS_AFTER_QUIET_S
from tests.fixtures.kube import KubeCluster

from ..sim import SCORE, SCORE_V2, Fleet, eventually

SEL = {"matchLabels": {"role": "edge"}}


def agg(kube: KubeCluster) -> dict[str, int]:
    a = kube.aggregate("ns", "web")
    if a:
        assert a["targeted"] == a["running"] + a["pending"] + a["failed"] + a["unreachable"]
    return a


def test_pending_running_failed_with_bounded_failing_list(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    devices = [f"d{i:02d}" for i in range(15)]
    fleet.join(devices, {"role": "edge"})
    start_operator()
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: len(fleet.desired()) == 15)
    eventually(lambda: agg(kube).get("pending") == 15)

    fleet.report(devices[:3], "web", Phase.RUNNING)
    fleet.report(devices[3:], "web", Phase.FAILED, message="port 8080 is already in use")
    eventually(
        lambda: (
            agg(kube)
            == {"targeted": 15, "running": 3, "pending": 0, "failed": 12, "unreachable": 0}
        )
    )
    status = kube.status("ns", "web")
    assert len(status["failingDevices"]) == 10  # bounded
    assert status["failingDevices"][0] == {
        "device": "d03",
        "message": "port 8080 is already in use",
    }
    assert kube.ready("ns", "web")["reason"] == "DevicesFailing"


def test_spec_update_counts_old_revision_reports_as_pending(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1", "d2"], {"role": "edge"})
    start_operator()
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: len(fleet.desired()) == 2)
    fleet.report(["d1", "d2"], "web", Phase.RUNNING)
    eventually(lambda: agg(kube).get("running") == 2)
    old = fleet.desired()["d1.web"].revision

    kube.patch_deployment_spec("ns", "web", {"score": SCORE_V2})
    eventually(lambda: fleet.desired()["d1.web"].revision > old)
    eventually(lambda: agg(kube).get("pending") == 2)
    assert kube.status("ns", "web")["observedGeneration"] == 2
    fleet.report(["d1"], "web", Phase.RUNNING, revision=old)  # a late report on the old spec
    fleet.report(["d2"], "web", Phase.RUNNING)  # the new one
    eventually(
        lambda: (
            agg(kube) == {"targeted": 2, "running": 1, "pending": 1, "failed": 0, "unreachable": 0}
        )
    )


def test_silent_devices_are_unreachable_then_come_back(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1", "d2", "d3"], {"role": "edge"})
    start_operator(liveness_timeout=1.0)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: len(fleet.desired()) == 3)
    fleet.report(["d1", "d2", "d3"], "web", Phase.RUNNING)
    fleet.beat(["d1", "d2", "d3"])
    eventually(lambda: agg(kube).get("running") == 3)

    def d1_beats_d2_d3_silent() -> bool:
        fleet.beat(["d1"])
        return agg(kube) == {
            "targeted": 3,
            "running": 1,
            "pending": 0,
            "failed": 0,
            "unreachable": 2,
        }

    eventually(d1_beats_d2_d3_silent, timeout=5, interval=0.2)
    fleet.beat(["d2", "d3"])
    eventually(lambda: agg(kube).get("running") == 3, timeout=5)


def test_device_that_never_beat_is_unreachable(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.info(["d1"], {"role": "edge"})
    start_operator()
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(
        lambda: (
            agg(kube) == {"targeted": 1, "running": 0, "pending": 0, "failed": 0, "unreachable": 1}
        )
    )


def test_status_patches_are_coalesced_yet_prompt(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    devices = [f"d{i:03d}" for i in range(300)]
    fleet.join(devices, {"role": "edge"})
    start_operator(status_interval=0.5)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: len(fleet.desired()) == 300)
    eventually(lambda: agg(kube).get("pending") == 300)
    before = kube.status_patches()

    fleet.report(devices, "web", Phase.RUNNING)  # a burst of 300 reports
    eventually(lambda: agg(kube).get("running") == 300)
    assert kube.status_patches() - before <= 10

    time.sleep(0.6)  # a quiet spell, then one isolated change
    t0 = time.monotonic()
    fleet.report(devices[:1], "web", Phase.FAILED, message="crashed")
    eventually(lambda: agg(kube).get("failed") == 1, interval=0.02)
    assert time.monotonic() - t0 < STATUS_AFTER_QUIET_S
