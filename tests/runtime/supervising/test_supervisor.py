"""The supervisor starts actors in order, stops them in reverse, and reports leftovers."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import pykka
import pytest

from fleet.runtime.actorkit.supervisor import Supervisor


class Recorded(pykka.ThreadingActor):
    def __init__(self, name: str, log: list[str], *, slow_stop: threading.Event | None = None):
        super().__init__()
        self.name = name
        self.log = log
        self.slow_stop = slow_stop

    def on_start(self) -> None:
        self.log.append(f"start {self.name}")

    def on_stop(self) -> None:
        if self.slow_stop is not None:
            self.slow_stop.wait(5)
        self.log.append(f"stop {self.name}")


class BrokenStart(pykka.ThreadingActor):
    def on_start(self) -> None:
        raise RuntimeError("cannot start: no config")


def test_starts_in_order_and_stops_in_reverse() -> None:
    log: list[str] = []
    sup = Supervisor(name="test")
    sup.start("a", lambda: Recorded.start("a", log))
    sup.add_cleanup("loop", lambda: log.append("close loop"))
    sup.start("b", lambda: Recorded.start("b", log))
    assert log == ["start a", "start b"]  # each was ready before the next began
    assert sup.stop(timeout=5) == []
    assert log == ["start a", "start b", "stop b", "close loop", "stop a"]


def test_an_actor_that_fails_to_start_is_reported() -> None:
    sup = Supervisor(name="test")
    with pytest.raises(pykka.ActorDeadError):
        sup.start("broken", BrokenStart.start)
    assert sup.stop(timeout=5) == []


def test_an_actor_that_will_not_stop_is_a_leftover(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    release = threading.Event()
    sup = Supervisor(name="test")
    ref = sup.start("stuck", lambda: Recorded.start("stuck", log, slow_stop=release))
    assert sup.stop(timeout=0.2) == ["stuck"]
    assert "still running after stop" in caplog.text
    release.set()  # let it finish stopping, so the test leaves nothing behind
    for _ in range(250):
        if not ref.is_alive():
            break
        threading.Event().wait(0.02)
    assert not ref.is_alive()


def test_sigterm_stops_everything() -> None:
    log: list[str] = []
    sup = Supervisor(name="test")
    sup.start("a", lambda: Recorded.start("a", log))
    timer = threading.Timer(0.2, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.start()
    code: Any = sup.run_until_signal(timeout=5)
    timer.join()
    assert code == 0
    assert log == ["start a", "stop a"]


def test_a_sigterm_during_the_start_is_a_clean_stop_after_it() -> None:
    """Found by an agent SIGTERMed while its actors were still starting (and already at
    work): it died of the signal (exit -15) instead of stopping them."""
    log: list[str] = []
    sup = Supervisor(name="test")
    before = signal.getsignal(signal.SIGTERM)
    sup.catch_signals()
    os.kill(os.getpid(), signal.SIGTERM)  # handled at once, in this (the main) thread
    sup.start("a", lambda: Recorded.start("a", log))
    code: Any = sup.run_until_signal(timeout=5)
    assert code == 0
    assert log == ["start a", "stop a"]
    assert signal.getsignal(signal.SIGTERM) is before  # handed back
