"""Each actor handles its messages in the order they were sent, on_start first."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from fleet.runtime.actorkit.pool import ActorPool, PooledActor

from .actors import Recorder

pytestmark = pytest.mark.timeout(30)


class SeqCheck(PooledActor):
    def __init__(self, *, pool: ActorPool) -> None:
        super().__init__(pool=pool)
        self.seen: dict[int, list[int]] = {}

    def on_receive(self, message: Any) -> Any:
        if message == "seen":
            return self.seen
        sender, seq = message
        self.seen.setdefault(sender, []).append(seq)
        return None


def test_messages_from_many_threads_arrive_in_each_senders_order(pool: ActorPool) -> None:
    refs = [SeqCheck.start(pool=pool) for _ in range(10)]
    senders, per_sender = 8, 500
    go = threading.Event()

    def send(sender: int) -> None:
        go.wait(5)
        for seq in range(per_sender):
            for ref in refs:
                ref.tell((sender, seq))

    threads = [threading.Thread(target=send, args=(s,)) for s in range(senders)]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join(20)
    for ref in refs:
        seen = ref.ask("seen", block=True, timeout=10)
        assert sorted(seen) == list(range(senders))
        for sender in range(senders):
            assert seen[sender] == list(range(per_sender)), f"sender {sender} out of order"
        ref.stop(timeout=5)


def test_on_start_runs_before_any_message_even_when_slow(pool: ActorPool) -> None:
    ref = Recorder.start(pool=pool, start_delay=0.2)
    for n in range(5):
        ref.tell(n)
    assert ref.ask("events", timeout=5) == ["start", 0, 1, 2, 3, 4]
    ref.stop(timeout=5)


def test_on_stop_runs_last_after_the_messages_sent_before_stop(pool: ActorPool) -> None:
    events: list[Any] = []
    ref = Recorder.start(pool=pool, events=events)
    for n in range(100):
        ref.tell(n)
    assert ref.stop(timeout=5) is True
    assert events == ["start", *range(100), "stop"]


def test_asks_from_many_threads_each_get_their_own_answer(pool: ActorPool) -> None:
    refs = [Recorder.start(pool=pool) for _ in range(4)]
    wrong: list[tuple[int, Any]] = []

    def ask(thread: int) -> None:
        for n in range(200):
            value = (thread, n)
            answer = refs[n % 4].ask(value, timeout=5)
            if answer != value:
                wrong.append((thread, answer))

    threads = [threading.Thread(target=ask, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not any(thread.is_alive() for thread in threads)
    assert wrong == []
    for ref in refs:
        ref.stop(timeout=5)
