"""The recorder alone against the API emulator: an Event created, a repeat patched
(``count``), one deleted by hand posted anew, a Device's uid looked up, a full queue
dropping and counting without blocking, errors counted in the API's health."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import kmock
import kubernetes
import pytest

from fleet.contracts import CRD_GROUP, CRD_VERSION
from fleet.runtime.kube.client import KubeClient
from fleet.runtime.kube.event_recorder import EventRecorder
from fleet.runtime.kube.events import EventLimits, EventNote, ObjectRef
from fleet.runtime.kube.health import ApiHealth
from fleet.runtime.prometheus.operator_metrics import OperatorMetrics
from tests.fixtures.kube import KubeCluster

from ..sim import eventually
from .conftest import events_for

pytestmark = pytest.mark.timeout(60)

API_VERSION = f"{CRD_GROUP}/{CRD_VERSION}"
NOW = 1_800_000_000.0


class Outcomes:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seen: list[str] = []
        self.errors: list[tuple[str, str]] = []

    def result(self, result: str, count: int) -> None:
        with self._lock:
            self.seen.extend([result] * count)

    def error(self, verb: str, kind: str) -> None:
        with self._lock:
            self.errors.append((verb, kind))


@pytest.fixture
def outcomes() -> Outcomes:
    return Outcomes()


def recorder_for(kube: KubeCluster, outcomes: Outcomes, limits: EventLimits) -> EventRecorder:
    client = KubeClient(kube.api_client, health=ApiHealth(on_error=outcomes.error))
    return EventRecorder(client, limits=limits, observe=outcomes.result)


@pytest.fixture
def recorder(kube: KubeCluster, outcomes: Outcomes) -> Iterator[EventRecorder]:
    rec = recorder_for(kube, outcomes, EventLimits(interval=0.0))
    rec.start()
    yield rec
    rec.stop()


def web(reason: str = "Ready", message: str = "1/1 running", at: float = NOW) -> EventNote:
    obj = ObjectRef(api_version=API_VERSION, kind="Deployment", name="web", namespace="ns",
                    uid="u-web")  # fmt: skip
    return EventNote(obj=obj, type="Normal", reason=reason, message=message, at=at)


def test_created_then_a_repeat_patched_then_deleted_by_hand_posted_anew(
    kube: KubeCluster, recorder: EventRecorder, outcomes: Outcomes
) -> None:
    recorder.post(web())
    (first,) = eventually(lambda: events_for(kube, "Deployment", "web"))
    assert first["count"] == 1
    assert first["firstTimestamp"].startswith("2027-01-15T08")
    recorder.post(web(at=NOW + 60))
    eventually(lambda: events_for(kube, "Deployment", "web")[0]["count"] == 2)
    (patched,) = events_for(kube, "Deployment", "web")
    assert patched["lastTimestamp"].startswith("2027-01-15T08:01")

    core = kubernetes.client.CoreV1Api(kube.api_client)
    core.delete_namespaced_event(first["metadata"]["name"], "ns")
    recorder.post(web(at=NOW + 120))
    (anew,) = eventually(lambda: events_for(kube, "Deployment", "web"))
    assert anew["count"] == 1
    assert anew["metadata"]["name"] != first["metadata"]["name"]
    eventually(lambda: outcomes.seen == ["created", "patched", "created"])


def test_a_devices_uid_is_read_from_its_resource(
    kube: KubeCluster, recorder: EventRecorder
) -> None:
    body = {"apiVersion": API_VERSION, "kind": "Device", "metadata": {"name": "pi-01"},
            "spec": {"deviceId": "pi-01"}}  # fmt: skip
    kube.custom.create_cluster_custom_object(CRD_GROUP, CRD_VERSION, "devices", body)
    uid = (kube.cluster_object("devices", "pi-01") or {})["metadata"]["uid"]
    for name in ("pi-01", "pi-02"):  # pi-02 has no resource: its Event has no uid
        obj = ObjectRef(api_version=API_VERSION, kind="Device", name=name)
        recorder.post(EventNote(obj=obj, type="Warning", reason="DeviceUnreachable",
                                message="no heartbeat", at=NOW))  # fmt: skip
    (one,) = eventually(lambda: events_for(kube, "Device", "pi-01"))
    (two,) = eventually(lambda: events_for(kube, "Device", "pi-02"))
    assert one["involvedObject"]["uid"] == uid
    assert "uid" not in two["involvedObject"]
    assert one["metadata"]["namespace"] == two["metadata"]["namespace"] == "default"


def test_a_full_queue_drops_and_counts_and_never_blocks(
    kube: KubeCluster, outcomes: Outcomes
) -> None:
    rec = recorder_for(kube, outcomes, EventLimits(capacity=5, qps=0.001, burst=1))
    rec.start()
    try:
        started = time.monotonic()
        for i in range(1000):
            obj = ObjectRef(api_version=API_VERSION, kind="Device", name=f"d{i}")
            rec.post(EventNote(obj=obj, type="Warning", reason="DeviceUnreachable",
                               message="gone", at=NOW))  # fmt: skip
        posting = time.monotonic() - started
        eventually(lambda: rec.counts["created"] == 1)  # the one token of the burst
        assert rec.counts["dropped"] >= 1000 - 1 - 5
        assert outcomes.seen.count("dropped") == rec.counts["dropped"]
        print(f"1,000 posts to a full queue: {posting * 1000:.1f} ms")
    finally:
        rec.stop(timeout=5)  # with notes waiting, at once
    assert len(events_for(kube, "Device", "d0")) == 1


def test_errors_are_counted_in_the_apis_health_and_dropped(
    kube: KubeCluster, outcomes: Outcomes
) -> None:
    assert kube.server.emulator is not None
    kube.server.emulator["post", kmock.resource("", "v1", "events")] << 422
    rec = recorder_for(kube, outcomes, EventLimits(interval=0.0))
    rec.start()
    try:
        rec.post(web())
        rec.post(web("NotReady"))
        eventually(lambda: rec.counts["failed"] == 2)
    finally:
        rec.stop()
    assert outcomes.errors == [("create", "refused"), ("create", "refused")]
    assert rec.counts["created"] == 0


def test_outcomes_are_counted_in_the_operators_metrics(kube: KubeCluster) -> None:
    metrics = OperatorMetrics()
    client = KubeClient(kube.api_client, health=ApiHealth(on_error=metrics.kube_error))
    rec = EventRecorder(client, limits=EventLimits(interval=0.0), observe=metrics.events_recorded)
    rec.start()
    try:
        rec.post(web())
        eventually(lambda: rec.counts["created"] == 1)  # (posted at once, they coalesce)
        rec.post(web(at=NOW + 1))
        eventually(lambda: rec.counts["patched"] == 1)
    finally:
        rec.stop()

    def sample(result: str) -> float | None:
        return metrics.registry.get_sample_value("fleet_operator_events_total", {"result": result})

    assert (sample("created"), sample("patched"), sample("dropped")) == (1.0, 1.0, 0.0)
