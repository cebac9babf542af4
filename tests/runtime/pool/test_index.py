"""ActorIndex: O(1) lookup by key, and stop_all that stops thousands at once."""

from __future__ import annotations

import threading
import time
from typing import Any

import pykka
import pytest

from fleet.runtime.actorkit.pool import ActorIndex, ActorPool

from .actors import Recorder

pytestmark = pytest.mark.timeout(30)


class ThreadRecorder(pykka.ThreadingActor):
    def __init__(self, events: list[Any]) -> None:
        super().__init__()
        self.events = events

    def on_stop(self) -> None:
        self.events.append("stop")


def test_add_get_pop(pool: ActorPool) -> None:
    index: ActorIndex[str] = ActorIndex(name="devices")
    ref = Recorder.start(pool=pool)
    index.add("d1", ref)
    assert index.get("d1") is ref
    assert "d1" in index
    assert index.get("d2") is None
    assert len(index) == 1
    assert index.keys() == ["d1"]
    index.add("d1", ref)  # the same ref again is fine
    with pytest.raises(ValueError, match="'devices': key 'd1' already holds live actor"):
        index.add("d1", Recorder.start(pool=pool))
    assert index.pop("d1") is ref
    assert index.pop("d1") is None
    assert ref.is_alive()  # pop only forgets
    for actor in pool.live_actors():
        actor.stop(timeout=5)


def test_a_dead_entry_reads_as_absent_and_can_be_replaced(pool: ActorPool) -> None:
    index: ActorIndex[int] = ActorIndex()
    dead = Recorder.start(pool=pool)
    index.add(7, dead)
    dead.stop(timeout=5)
    assert 7 not in index
    assert index.get(7) is None
    assert len(index) == 0  # dropped on read
    index.add(7, dead)
    fresh = Recorder.start(pool=pool)
    index.add(7, fresh)  # replaces the dead one
    assert index.get(7) is fresh
    assert index.stop_all(timeout=5) == []


def test_stop_all_stops_thousands_of_pooled_actors(pool: ActorPool) -> None:
    """Speed is measured by benchmarks/actors.py; here: all stop, none twice, none lost."""
    index: ActorIndex[int] = ActorIndex()
    events: list[Any] = []
    for n in range(5000):
        index.add(n, Recorder.start(pool=pool, events=events))
    refs = [index.get(n) for n in range(5000)]
    for ref in refs[:100]:
        assert ref is not None
        ref.tell("last words")
    assert index.stop_all(timeout=20) == []
    assert len(index) == 0
    assert events.count("stop") == 5000
    assert events.count("last words") == 100
    assert not any(ref is not None and ref.is_alive() for ref in refs)
    assert pool.live_actors() == []


def test_stop_all_mixes_pools_and_threading_actors() -> None:
    pools = [ActorPool(workers=1, name=f"mix-{n}") for n in range(2)]
    try:
        index: ActorIndex[str] = ActorIndex()
        events: list[Any] = []
        for n in range(50):
            index.add(f"a{n}", Recorder.start(pool=pools[n % 2], events=events))
        for n in range(5):
            index.add(f"t{n}", ThreadRecorder.start(events))
        assert index.stop_all(timeout=10) == []
        assert events.count("stop") == 55
    finally:
        for pool in pools:
            assert pool.shutdown(timeout=5) == []


def test_stop_all_returns_the_keys_that_did_not_stop_in_time(pool: ActorPool) -> None:
    index: ActorIndex[str] = ActorIndex()
    gate = threading.Event()
    stuck = Recorder.start(pool=pool, gate=gate)
    index.add("stuck", stuck)
    index.add("fine", Recorder.start(pool=pool))
    stuck.tell("block")
    time.sleep(0.05)
    assert index.stop_all(timeout=0.3) == ["stuck"]
    gate.set()
    assert stuck.actor_stopped.wait(5)  # the stop was sent; it lands once unblocked
