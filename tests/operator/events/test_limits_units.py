"""The rules that keep Events few, with a fake clock: coalescing per (object, reason), one
Event per key per interval, per-object and global token buckets, a bounded queue, and the
correlator that turns a repeat into a patch of ``count``."""

from __future__ import annotations

import pytest

from fleet.runtime.kube.events import (
    Correlator,
    EventLimits,
    EventNote,
    EventQueue,
    ObjectRef,
    Posted,
    TokenBucket,
    cut,
)

pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ref(name: str = "web", namespace: str | None = "ns") -> ObjectRef:
    kind = "Deployment" if namespace is not None else "Device"
    return ObjectRef(api_version="fleet.nationtech.io/v1alpha1", kind=kind, name=name,
                     namespace=namespace, uid=f"uid-{name}")  # fmt: skip


def note(
    reason: str = "DevicesFailed", message: str = "m", obj: ObjectRef | None = None
) -> EventNote:
    return EventNote(obj=obj or ref(), type="Warning", reason=reason, message=message, at=0.0)


def drain(queue: EventQueue) -> list[EventNote]:
    out: list[EventNote] = []
    while True:
        taken, _wait = queue.take()
        if taken is None:
            return out
        out.append(taken)


def test_notes_of_one_key_coalesce_latest_wins_and_wait_for_the_interval() -> None:
    clock = Clock()
    queue = EventQueue(EventLimits(interval=30.0), clock=clock)
    queue.put(note(message="1 failed"))
    assert [n.message for n in drain(queue)] == ["1 failed"]  # the first goes at once
    for count in range(2, 1001):  # a burst: 999 more of the same reason
        queue.put(note(message=f"{count} failed"))
    assert len(queue) == 1
    taken, wait = queue.take()
    assert taken is None
    assert wait == pytest.approx(30.0)
    clock.now += 29.9
    assert queue.take()[0] is None
    clock.now += 0.2
    assert [n.message for n in drain(queue)] == ["1000 failed"]  # the latest, once


def test_other_reasons_and_objects_do_not_wait_for_each_other() -> None:
    queue = EventQueue(EventLimits(interval=30.0), clock=Clock())
    queue.put(note("Ready"))
    queue.put(note("NotReady"))
    queue.put(note("Ready", obj=ref("api")))
    assert [(n.reason, n.obj.name) for n in drain(queue)] == [
        ("Ready", "web"), ("NotReady", "web"), ("Ready", "api"),
    ]  # fmt: skip


def test_namespaced_objects_go_before_cluster_scoped_ones() -> None:
    queue = EventQueue(clock=Clock())
    for i in range(5):
        queue.put(note("DeviceUnreachable", obj=ref(f"pi-{i}", namespace=None)))
    queue.put(note("NotReady"))
    assert drain(queue)[0].reason == "NotReady"


def test_each_object_has_a_burst_then_one_per_refill() -> None:
    clock = Clock()
    queue = EventQueue(EventLimits(interval=0.0, object_burst=3, object_refill=60.0), clock=clock)
    for i in range(5):
        queue.put(note(f"R{i}"))
    assert [n.reason for n in drain(queue)] == ["R0", "R1", "R2"]
    taken, wait = queue.take()
    assert taken is None
    assert wait == pytest.approx(60.0)
    clock.now += 60.0
    assert [n.reason for n in drain(queue)] == ["R3"]


def test_the_whole_process_is_rate_limited() -> None:
    clock = Clock()
    queue = EventQueue(EventLimits(qps=2.0, burst=4), clock=clock)
    for i in range(10):
        queue.put(note("R", obj=ref(f"d{i}")))
    assert len(drain(queue)) == 4
    taken, wait = queue.take()
    assert taken is None
    assert wait == pytest.approx(0.5)
    clock.now += 1.0
    assert len(drain(queue)) == 2


def test_a_full_queue_drops_new_keys_and_counts_them_but_updates_waiting_ones() -> None:
    queue = EventQueue(EventLimits(capacity=3), clock=Clock())
    assert all(queue.put(note("R", obj=ref(f"d{i}"))) for i in range(3))
    assert not queue.put(note("R", obj=ref("d3")))
    assert not queue.put(note("R", obj=ref("d4")))
    assert queue.dropped == 2
    assert len(queue) == 3
    assert queue.put(note("R", message="newer", obj=ref("d0")))  # its key waits: replaced
    assert next(n.message for n in drain(queue)) == "newer"


def test_a_flood_of_objects_keeps_memory_bounded() -> None:
    clock = Clock()
    queue = EventQueue(EventLimits(capacity=10, qps=1e9, burst=10**9), clock=clock)
    for i in range(1000):
        queue.put(note("R", obj=ref(f"d{i}")))
        drain(queue)
        clock.now += 0.001
    assert len(queue._objects) <= 20
    assert len(queue._sent) <= 20


def test_a_retried_note_waits_again_unless_a_newer_one_does() -> None:
    clock = Clock()
    queue = EventQueue(EventLimits(interval=5.0), clock=clock)
    queue.put(note(message="old"))
    (old,) = drain(queue)
    queue.retry(old)
    clock.now += 5.0
    assert [n.message for n in drain(queue)] == ["old"]
    queue.put(note(message="new"))
    queue.retry(old)  # the newer one stays
    clock.now += 5.0
    assert [n.message for n in drain(queue)] == ["new"]


def test_token_bucket_refills_up_to_its_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=2, now=0.0)
    assert bucket.take(0.0)
    assert bucket.take(0.0)
    assert not bucket.take(0.0)
    assert bucket.ready_in(0.5) == pytest.approx(0.5)
    assert bucket.full(100.0)


def test_the_correlator_finds_repeats_of_the_same_message_only() -> None:
    correlator = Correlator(capacity=2)
    first = note("Ready", "2/2 running")
    assert correlator.find(first) is None
    correlator.remember(first, Posted(namespace="ns", name="web.1", count=1, first="t"))
    posted = correlator.find(note("Ready", "2/2 running"))
    assert posted is not None
    assert posted.name == "web.1"
    assert correlator.find(note("Ready", "3/3 running")) is None  # another message
    assert correlator.find(note("NotReady", "2/2 running")) is None  # another reason
    assert correlator.find(note("Ready", "2/2 running", obj=ref("api"))) is None  # object
    correlator.remember(note("A"), Posted(namespace="ns", name="a", count=1, first="t"))
    correlator.remember(note("B"), Posted(namespace="ns", name="b", count=1, first="t"))
    assert correlator.find(first) is None  # the least recently told is forgotten first
    correlator.forget(note("B"))
    assert correlator.find(note("B")) is None


def test_messages_are_cut_to_a_bound() -> None:
    assert cut("x" * 5000) == "x" * 1023 + "\u2026"
    assert cut("short") == "short"
