"""stop(): messages before it are handled, after it refused; the pool stops them all."""

from __future__ import annotations

import threading
import time
from typing import Any

import pykka
import pytest

from fleet.runtime.actorkit.pool import ActorPool, PoolDeadlockError, PooledActor, live_pools

from .actors import Recorder

pytestmark = pytest.mark.timeout(30)


def test_stop_handles_earlier_messages_and_refuses_later_ones(pool: ActorPool) -> None:
    gate = threading.Event()
    events: list[Any] = []
    ref = Recorder.start(pool=pool, events=events, gate=gate)
    ref.tell("block")  # the actor waits on the gate: everything below queues up
    ref.tell(1)
    ask_before = ref.ask(2, block=False)
    stopping = ref.stop(block=False)
    ask_after = ref.ask(3, block=False)  # accepted (still alive), answered as dead
    ref.tell(4)  # accepted, dropped at stop like ThreadingActor does
    gate.set()
    assert stopping.get(timeout=5) is True
    assert ask_before.get(timeout=5) == 2
    with pytest.raises(pykka.ActorDeadError, match="stopped before handling"):
        ask_after.get(timeout=5)
    assert events == ["start", "block", 1, 2, "stop"]
    assert not ref.is_alive()
    assert ref.actor_stopped.wait(0)
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(5)
    with pytest.raises(pykka.ActorDeadError):
        ref.ask(5, timeout=5)
    assert ref.stop(timeout=5) is False  # already dead


def test_stop_from_inside_the_actor(pool: ActorPool) -> None:
    class SelfStopping(PooledActor):
        def on_receive(self, message: Any) -> Any:
            self.stop()
            return message

    ref = SelfStopping.start(pool=pool)
    assert ref.ask("bye", timeout=5) == "bye"
    assert ref.actor_stopped.wait(5)


def test_actor_stopped_wait_wakes_a_waiting_thread_and_times_out_before(pool: ActorPool) -> None:
    ref = Recorder.start(pool=pool)
    assert ref.actor_stopped.wait(0.05) is False
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(ref.actor_stopped.wait(5)))
    waiter.start()
    time.sleep(0.05)
    ref.stop(timeout=5)
    waiter.join(5)
    assert woke == [True]


def test_pool_shutdown_stops_every_actor_with_on_stop_and_ends_workers() -> None:
    pool = ActorPool(workers=2, name="shutdown-pool")
    events: list[Any] = []
    refs = [Recorder.start(pool=pool, events=events) for _ in range(200)]
    for ref in refs:
        ref.tell("hello")
    assert len(pool.live_actors()) == 200
    assert pool.live_count == 200
    assert pool in live_pools()
    assert pool.shutdown(timeout=10) == []
    assert events.count("stop") == 200
    assert events.count("hello") == 200
    assert not any(ref.is_alive() for ref in refs)
    assert pool.live_actors() == []
    assert pool.live_count == 0
    assert pool not in live_pools()
    assert not [t for t in threading.enumerate() if t.name.startswith("shutdown-pool-")]
    with pytest.raises(RuntimeError, match="'shutdown-pool' is shut down"):
        Recorder.start(pool=pool)


def test_pool_shutdown_reports_an_actor_that_will_not_stop() -> None:
    pool = ActorPool(workers=1, name="stuck-pool")
    gate = threading.Event()
    stuck = Recorder.start(pool=pool, gate=gate)
    stuck.tell("block")
    time.sleep(0.05)
    try:
        assert pool.shutdown(timeout=0.2) == [stuck]
        assert pool in live_pools()
    finally:
        gate.set()
        assert pool.shutdown(timeout=5) == []  # a second call finishes the job
    assert not stuck.is_alive()
    assert pool not in live_pools()


def test_shutdown_from_a_worker_of_the_pool_is_refused(pool: ActorPool) -> None:
    class Shutter(PooledActor):
        def on_receive(self, message: Any) -> Any:
            pool.shutdown(timeout=1)

    ref = Shutter.start(pool=pool)
    with pytest.raises(PoolDeadlockError, match="cannot shut down the pool"):
        ref.ask("now", timeout=5)
    ref.stop(timeout=5)


def test_start_without_the_pool_in_init_is_refused(pool: ActorPool) -> None:
    class Forgetful(PooledActor):
        def __init__(self, *, pool: ActorPool) -> None:
            pass  # forgot super().__init__(pool=pool)

    with pytest.raises(TypeError, match=r"Forgetful\.__init__ must call super"):
        Forgetful.start(pool=pool)
