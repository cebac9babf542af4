"""Events a user sees with ``kubectl describe``, from a real operator (real nats-server,
simulated devices, the API emulator): a Deployment's Ready, NotReady and DevicesFailed, a
repeat patched (``count``), NameConflict, InvalidSpec, a Device unreachable and back,
1,000 failing devices as a bounded number of Events, nothing posted again after a
restart, and an API that refuses Events stopping nothing."""

from __future__ import annotations

import time
from collections.abc import Callable

import kmock
import pytest

from fleet.actors.operator.app import Operator
from fleet.contracts import Phase
from fleet.runtime.kube.events import EventLimits
from tests.fixtures.kube import KubeCluster

from ..sim import SCORE, Fleet, eventually
from .conftest import all_events, events_for, reasons

pytestmark = pytest.mark.timeout(180)

SEL = {"matchLabels": {"role": "edge"}}
QUICK = EventLimits(interval=0.5)
API_VERSION = "fleet.nationtech.io/v1alpha1"


def test_a_deployment_tells_ready_failures_not_ready_and_patches_a_repeat(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1", "d2"], {"role": "edge"})
    start_operator(events=QUICK)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: len(fleet.desired()) == 2, timeout=30)
    fleet.report(["d1", "d2"], "web", Phase.RUNNING)

    (ready,) = eventually(lambda: events_for(kube, "Deployment", "web", "Ready"), timeout=30)
    uid = (kube.deployment("ns", "web") or {})["metadata"]["uid"]
    assert ready["involvedObject"] == {
        "apiVersion": API_VERSION, "kind": "Deployment", "name": "web", "namespace": "ns",
        "uid": uid,
    }  # fmt: skip
    assert ready["metadata"]["namespace"] == "ns"
    assert (ready["type"], ready["count"]) == ("Normal", 1)
    assert ready["reportingComponent"] == ready["source"]["component"] == "fleet-operator"
    assert ready["message"] == "2/2 running, 0 pending, 0 failed, 0 unreachable"

    fleet.report(["d2"], "web", Phase.FAILED, message="port 8080 is already in use")
    (failed,) = eventually(lambda: events_for(kube, "Deployment", "web", "DevicesFailed"),
                           timeout=30)  # fmt: skip
    assert failed["type"] == "Warning"
    assert failed["message"] == (
        "1 of 2 targeted devices failed: d2; d2: port 8080 is already in use"
    )
    (not_ready,) = eventually(lambda: events_for(kube, "Deployment", "web", "NotReady"))
    assert not_ready["type"] == "Warning"
    assert not_ready["message"].startswith("DevicesFailing: 1/2 running")

    fleet.report(["d2"], "web", Phase.RUNNING)  # Ready again, with the same message
    eventually(lambda: events_for(kube, "Deployment", "web", "Ready")[0]["count"] == 2,
               timeout=30)  # fmt: skip
    (again,) = events_for(kube, "Deployment", "web", "Ready")  # patched, not created
    assert again["metadata"]["name"] == ready["metadata"]["name"]
    assert again["lastTimestamp"] >= again["firstTimestamp"]


def test_name_conflicts_and_invalid_specs_are_warnings(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1"], {"role": "edge"})
    start_operator(events=QUICK)
    kube.create_deployment("team-a", "web", selector=SEL, score=SCORE)
    eventually(lambda: set(fleet.desired()) == {"d1.web"}, timeout=30)
    kube.create_deployment("team-b", "web", selector=SEL, score=SCORE)
    (conflict,) = eventually(
        lambda: events_for(kube, "Deployment", "web", "NameConflict"), timeout=30
    )
    assert conflict["type"] == "Warning"
    assert conflict["involvedObject"]["namespace"] == conflict["metadata"]["namespace"] == "team-b"
    assert "team-a/web" in conflict["message"]

    kube.create_deployment(
        "ns", "bad", selector={"matchExpressions": [{"key": "a", "operator": "Nope"}]}, score=SCORE
    )
    (invalid,) = eventually(lambda: events_for(kube, "Deployment", "bad", "InvalidSpec"),
                            timeout=30)  # fmt: skip
    assert invalid["type"] == "Warning"
    assert invalid["message"] == kube.ready("ns", "bad")["message"]
    assert kube.ready("ns", "bad")["reason"] == "InvalidSpec"


def test_a_device_tells_when_it_goes_unreachable_and_comes_back(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["pi-01"], {"role": "edge"})
    start_operator(events=QUICK, liveness_timeout=4.0)
    eventually(lambda: kube.cluster_object("devices", "pi-01"), timeout=30)
    fleet.beat(["pi-01"])  # its resource exists: from now on, silence
    (gone,) = eventually(lambda: events_for(kube, "Device", "pi-01", "DeviceUnreachable"),
                         timeout=30)  # fmt: skip
    uid = (kube.cluster_object("devices", "pi-01") or {})["metadata"]["uid"]
    assert gone["involvedObject"] == {
        "apiVersion": API_VERSION, "kind": "Device", "name": "pi-01", "uid": uid
    }  # fmt: skip
    assert gone["metadata"]["namespace"] == "default"  # a cluster-scoped object's, as a Node's
    assert gone["type"] == "Warning"
    assert gone["message"] == "no heartbeat for more than 4 s"

    fleet.beat(["pi-01"])
    (back,) = eventually(lambda: events_for(kube, "Device", "pi-01", "DeviceReachable"),
                         timeout=30)  # fmt: skip
    assert back["type"] == "Normal"
    assert back["involvedObject"]["uid"] == uid


def test_a_thousand_failing_devices_are_a_bounded_number_of_events(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    devices = [f"d{i:04d}" for i in range(1000)]
    fleet.join(devices, {"role": "edge"})
    interval = 2.0
    start_operator(events=EventLimits(interval=interval), liveness_timeout=120.0)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: len(fleet.desired()) == 1000, timeout=90)

    started = time.monotonic()
    for i in range(0, 1000, 250):  # a burst over a few status intervals
        fleet.report(devices[i : i + 250], "web", Phase.FAILED, message="image pull failed")
    final = "1000 of 1000 targeted devices failed: d0000, d0001, d0002, d0003, d0004 and 995 "
    eventually(
        lambda: any(e["message"].startswith(final)
                    for e in events_for(kube, "Deployment", "web", "DevicesFailed")),
        timeout=90,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    failed = events_for(kube, "Deployment", "web", "DevicesFailed")
    # one at the first failures, then at most one per interval (never one per device)
    assert 1 <= len(failed) <= 2 + elapsed / interval, (len(failed), elapsed)
    assert failed[-1]["message"] == final + "more; d0000: image pull failed"
    assert failed[-1]["type"] == "Warning"
    assert all(e["involvedObject"]["kind"] == "Deployment" for e in all_events(kube))
    assert len(all_events(kube)) <= len(failed) + 2, reasons(kube, "Deployment", "web")


def test_a_restarted_operator_does_not_tell_again_what_the_status_says(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1"], {"role": "edge"})
    first = start_operator(events=QUICK, liveness_timeout=60.0)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: len(fleet.desired()) == 1, timeout=30)
    fleet.report(["d1"], "web", Phase.RUNNING)
    eventually(lambda: events_for(kube, "Deployment", "web", "Ready"), timeout=30)
    first.stop()

    start_operator(events=QUICK, liveness_timeout=60.0)
    fleet.report(["d1"], "web", Phase.FAILED, message="crashed")
    eventually(lambda: events_for(kube, "Deployment", "web", "NotReady"), timeout=30)
    (ready,) = events_for(kube, "Deployment", "web", "Ready")
    assert ready["count"] == 1  # the restart found it Ready already: no second Ready


@pytest.mark.parametrize("code", [403, 500])
def test_an_api_that_refuses_events_stops_nothing(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator], code: int
) -> None:
    emulator = kube.server.emulator
    assert emulator is not None
    emulator["post", kmock.resource("", "v1", "events")] << code
    emulator["patch", kmock.resource("", "v1", "events")] << code
    fleet.join(["d1", "d2"], {"role": "edge"})
    operator = start_operator(events=QUICK)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: len(fleet.desired()) == 2, timeout=30)
    fleet.report(["d1", "d2"], "web", Phase.RUNNING)
    eventually(lambda: kube.ready("ns", "web").get("reason") == "AllRunning", timeout=30)
    recorder = operator.events
    assert recorder is not None
    eventually(lambda: recorder.counts["failed"] >= 1, timeout=30)  # Ready: refused
    fleet.report(["d2"], "web", Phase.FAILED, message="boom")
    eventually(lambda: kube.ready("ns", "web").get("reason") == "DevicesFailing", timeout=30)
    eventually(lambda: recorder.counts["failed"] >= 3, timeout=30)  # and the next ones
    assert recorder.counts["created"] == 0
    assert operator.summary()  # the operator still answers
