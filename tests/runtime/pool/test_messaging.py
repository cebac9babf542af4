"""tell/ask/proxy work as with pykka; blocking on the own pool from a worker is refused."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pykka
import pytest

from fleet.runtime.actorkit.pool import ActorIndex, ActorPool, PoolDeadlockError, PooledActor

from .actors import Recorder

pytestmark = pytest.mark.timeout(30)


def test_tell_ask_and_proxy(pool: ActorPool) -> None:
    ref = Recorder.start(pool=pool)
    ref.tell("told")
    assert ref.ask("asked", timeout=5) == "asked"
    proxy = ref.proxy()
    assert proxy.add(2, 3).get(timeout=5) == 5
    assert proxy.start_delay.get(timeout=5) == 0.0
    proxy.start_delay = 0.5
    assert proxy.start_delay.get(timeout=5) == 0.5
    assert ref.ask("events", timeout=5) == ["start", "told", "asked"]
    ref.stop(timeout=5)


def test_pooled_actors_are_not_in_pykkas_registry(pool: ActorPool) -> None:
    ref = Recorder.start(pool=pool)
    assert ref not in pykka.ActorRegistry.get_all()
    assert pool.live_actors() == [ref]
    ref.stop(timeout=5)
    assert pool.live_actors() == []


def test_blocking_ask_to_the_same_pool_from_a_handler_raises(pool1: ActorPool) -> None:
    asker = Recorder.start(pool=pool1)
    other = Recorder.start(pool=pool1)
    with pytest.raises(PoolDeadlockError, match=r"same pool 'test-pool1'.*tell a message"):
        asker.proxy().forward_ask(other).get(timeout=5)
    # The pool is not stuck: both actors still answer on the one worker.
    assert asker.ask(1, timeout=5) == 1
    assert other.ask(2, timeout=5) == 2
    for ref in (asker, other):
        ref.stop(timeout=5)


class Echo(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


def test_blocking_ask_to_another_pool_or_a_threading_actor_works(pool1: ActorPool) -> None:
    other_pool = ActorPool(workers=1, name="other-pool")
    try:
        asker = Recorder.start(pool=pool1)
        elsewhere = Recorder.start(pool=other_pool)
        echo = Echo.start()
        assert asker.proxy().forward_ask(elsewhere).get(timeout=5) == "hello"
        assert asker.proxy().forward_ask(echo).get(timeout=5) == "hello"
        for ref in (asker, elsewhere, echo):
            ref.stop(timeout=5)
    finally:
        assert other_pool.shutdown(timeout=5) == []


class Pinger(PooledActor):
    def __init__(self, *, pool: ActorPool, done: threading.Event) -> None:
        super().__init__(pool=pool)
        self.done = done

    def on_receive(self, message: Any) -> Any:
        match message:
            case ("start", ponger):
                ponger.tell(("ping", self.actor_ref))
            case "pong":
                self.done.set()
        return None


class Ponger(PooledActor):
    def on_receive(self, message: Any) -> Any:
        _, reply_to = message
        reply_to.tell("pong")


def test_tell_with_a_reply_to_ref_works_on_a_single_worker(pool1: ActorPool) -> None:
    done = threading.Event()
    pinger = Pinger.start(pool=pool1, done=done)
    ponger = Ponger.start(pool=pool1)
    pinger.tell(("start", ponger))
    assert done.wait(5)
    for ref in (pinger, ponger):
        ref.stop(timeout=5)


def test_ask_without_blocking_from_a_handler_is_allowed(pool1: ActorPool) -> None:
    class FireAndForget(PooledActor):
        def on_receive(self, message: Any) -> Any:
            future = message.ask("hi", block=False)
            return type(future).__name__

    sender = FireAndForget.start(pool=pool1)
    target = Recorder.start(pool=pool1)
    assert sender.ask(target, timeout=5) == "PooledFuture"
    assert target.ask("events", timeout=5) == ["start", "hi"]
    for ref in (sender, target):
        ref.stop(timeout=5)


def test_each_actor_has_a_unique_version_4_urn(pool: ActorPool) -> None:
    refs = [Recorder.start(pool=pool) for _ in range(2000)]
    urns = {ref.actor_urn for ref in refs}
    assert len(urns) == 2000
    assert {uuid.UUID(urn).version for urn in urns} == {4}
    assert str(refs[0]) == f"Recorder ({refs[0].actor_urn})"
    assert ActorIndex(name="x").stop_all(timeout=1) == []
    index: ActorIndex[int] = ActorIndex()
    for n, ref in enumerate(refs):
        index.add(n, ref)
    assert index.stop_all(timeout=10) == []
