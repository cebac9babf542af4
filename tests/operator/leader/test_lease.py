"""Leader election on a Lease, against the API emulator and a real nats-server.

Two candidates never lead at once; a leader that stops renewing is fenced off (no more
writes to Kubernetes or the buckets) before the other may take over; a released Lease
passes at once; a hostile Lease object costs nothing but the attempt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from fleet.errors import BusUnavailable, Fenced
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.fencing import OPEN
from fleet.runtime.kube.client import DEVICES, KubeClient
from fleet.runtime.kube.lease import LeaseElector, LeaseTiming
from fleet.runtime.nats.bus import Bus
from tests.fixtures.kube import KubeCluster
from tests.fixtures.nats import NatsServer

from ..sim import eventually

# Short, but with client-go's proportions: the fence closes 1 s before a takeover.
TIMING = LeaseTiming(duration=3.0, renew_deadline=2.0, retry_period=0.25)
NS = "fleet-system"


@pytest.fixture
def candidates(kube: KubeCluster) -> Iterator[list[LeaseElector]]:
    made: list[LeaseElector] = []
    yield made
    for elector in made:
        elector.release()


def candidate(kube: KubeCluster, made: list[LeaseElector], identity: str) -> LeaseElector:
    elector = LeaseElector(
        kube.api_client, namespace=NS, name="fleet-operator", identity=identity, timing=TIMING
    )
    made.append(elector)
    return elector


def lease(kube: KubeCluster) -> Any:
    return kubernetes.client.CoordinationV1Api(kube.api_client).read_namespaced_lease(
        "fleet-operator", NS
    )


def acquire_in_background(elector: LeaseElector) -> tuple[threading.Event, list[float]]:
    """Start ``elector.acquire``; the list gets the monotonic time it first led."""
    stop, led = threading.Event(), list[float]()

    def run() -> None:
        if elector.acquire(stop):
            led.append(time.monotonic())

    threading.Thread(target=run, daemon=True).start()
    return stop, led


@pytest.mark.timeout(60)
def test_one_leader_and_a_takeover_only_after_the_old_fence_closed(
    kube: KubeCluster, candidates: list[LeaseElector]
) -> None:
    first, second = candidate(kube, candidates, "a"), candidate(kube, candidates, "b")
    assert first.acquire(threading.Event())
    lost: list[str] = []
    first.keep(on_lost=lost.append)
    stop, led = acquire_in_background(second)
    try:
        renewed = lease(kube).spec.renew_time
        eventually(lambda: lease(kube).spec.renew_time != renewed, timeout=20)
        eventually(lambda: lease(kube).spec.renew_time > renewed, timeout=20)
        # three lease durations of renewals: the second candidate never got in
        deadline = time.monotonic() + 3 * TIMING.duration
        while time.monotonic() < deadline:
            assert not second.holding()
            assert lease(kube).spec.holder_identity == "a"
            time.sleep(0.1)
        assert first.holding()

        first._stop.set()  # the leader stalls: no more renewals (its process is wedged)
        eventually(lambda: led, timeout=TIMING.duration * 4)
        assert lease(kube).spec.holder_identity == "b"
        assert lease(kube).spec.lease_transitions == 1
        assert not first.holding()
        # the fence closed before the takeover, by the margin the timing promises
        assert first._valid_until <= led[0] - (TIMING.duration - TIMING.renew_deadline) + 0.5
        with pytest.raises(Fenced, match="does not hold the leader Lease"):
            first.check("patch something")
        second.check("patch something")  # the new leader may
    finally:
        stop.set()


@pytest.mark.timeout(60)
def test_a_released_lease_passes_at_once(kube: KubeCluster, candidates: list[LeaseElector]) -> None:
    first, second = candidate(kube, candidates, "a"), candidate(kube, candidates, "b")
    assert first.acquire(threading.Event())
    first.keep(on_lost=lambda reason: None)
    assert not second.try_acquire_or_renew()
    stop, led = acquire_in_background(second)
    try:
        released = time.monotonic()
        first.release()
        assert not first.holding()
        eventually(lambda: led, timeout=TIMING.duration * 4)
        # well before the Lease would have expired: the release cleared the holder
        assert led[0] - released < TIMING.duration, led[0] - released
    finally:
        stop.set()


@pytest.mark.timeout(60)
def test_the_keeper_reports_a_loss_and_the_fence_refuses_kube_writes(
    kube: KubeCluster, candidates: list[LeaseElector]
) -> None:
    first = candidate(kube, candidates, "a")
    assert first.acquire(threading.Event())
    client = KubeClient(kube.api_client, fence=first)
    body = {"apiVersion": "fleet.nationtech.io/v1alpha1", "kind": "Device",
            "metadata": {"name": "d1"}, "spec": {}}  # fmt: skip
    client.create(DEVICES, body=body)  # leading: allowed
    lost = threading.Event()
    first.keep(on_lost=lambda reason: lost.set())
    # someone else takes the Lease by force (an admin, a split brain): the keeper sees it
    api: Any = kubernetes.client.CoordinationV1Api(kube.api_client)  # it takes dicts too
    api.patch_namespaced_lease(
        "fleet-operator", NS, {"spec": {"holderIdentity": "intruder"}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    assert lost.wait(TIMING.renew_deadline * 5)
    with pytest.raises(Fenced):
        client.patch(DEVICES, namespace=None, name="d1", body={"metadata": {"labels": {"x": "y"}}})
    with pytest.raises(Fenced):
        client.delete(DEVICES, namespace=None, name="d1")
    device = kube.cluster_object("devices", "d1")
    assert device is not None
    assert "labels" not in device["metadata"]


@pytest.mark.timeout(60)
def test_the_fence_refuses_bucket_writes_but_not_reads(
    kube: KubeCluster,
    candidates: list[LeaseElector],
    nats_server: NatsServer,
    event_loop_thread: EventLoopThread,
) -> None:
    first = candidate(kube, candidates, "a")
    bus = Bus(urls=[nats_server.url], name="fenced", fence=first)
    loop = event_loop_thread

    async def connect() -> None:
        await bus.start()
        await bus.wait_connected(timeout=10)

    loop.run(connect(), timeout=20)
    try:
        with pytest.raises(Fenced):  # not leading yet: not even the buckets are made
            loop.run(bus.ensure_buckets(), timeout=20)
        assert first.acquire(threading.Event())
        loop.run(bus.ensure_buckets(), timeout=20)
        revision = loop.run(bus.put("desired-state", "d1.web", b"{}"), timeout=20)
        first.release()  # the fence closes
        with pytest.raises(Fenced):
            loop.run(bus.put("desired-state", "d1.web", b'{"x":1}'), timeout=20)
        with pytest.raises(Fenced):
            loop.run(bus.delete("desired-state", "d1.web"), timeout=20)
        entry = loop.run(bus.get("desired-state", "d1.web"), timeout=20)  # reads still work
        assert entry is not None
        assert (entry.revision, entry.value) == (revision, b"{}")
    finally:
        loop.run(bus.close(), timeout=20)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fenced", [False, True])
def test_a_fenced_bus_keeps_no_writes_for_a_reconnect(
    nats_server: NatsServer, event_loop_thread: EventLoopThread, fenced: bool
) -> None:
    """While NATS is away, nats-py buffers publishes and sends them on reconnect, perhaps
    after the fence closed: a fenced bus has no such buffer (a write fails at once)."""
    bus = Bus(urls=[nats_server.url], name="fenced", fence=OPEN if fenced else None)
    loop = event_loop_thread

    async def connect() -> None:
        await bus.start()
        await bus.wait_connected(timeout=10)

    loop.run(connect(), timeout=20)
    try:
        nats_server.stop()
        eventually(lambda: not bus.connected, timeout=30)
        publish = bus.transport.publish("$KV.desired-state.d1.web", b"late")
        if fenced:
            with pytest.raises(BusUnavailable):
                loop.run(publish, timeout=20)
        else:
            loop.run(publish, timeout=20)  # kept, to be sent on reconnect
    finally:
        loop.run(bus.close(), timeout=20)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "spec",
    [
        {"holderIdentity": "x" * 5000, "leaseDurationSeconds": 10**9},
        {"leaseDurationSeconds": -5, "renewTime": "2026-01-01T00:00:00.000000Z"},
    ],
)
def test_a_hostile_lease_is_read_without_harm(
    kube: KubeCluster, candidates: list[LeaseElector], spec: dict[str, Any]
) -> None:
    api: Any = kubernetes.client.CoordinationV1Api(kube.api_client)  # it takes dicts too
    api.create_namespaced_lease(
        NS, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "fleet-operator"}, "spec": spec},
    )  # fmt: skip
    elector = candidate(kube, candidates, "a")
    first = elector.try_acquire_or_renew()
    if spec.get("holderIdentity"):
        assert not first  # held by someone else, not expired as far as it saw
        assert not elector.holding()
    # an absurd duration reads as the default: the Lease is taken once that has passed
    stop, led = acquire_in_background(elector)
    try:
        eventually(lambda: led, timeout=TIMING.duration * 4)
    finally:
        stop.set()
    assert lease(kube).spec.holder_identity == "a"
