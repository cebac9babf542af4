"""A failure stops the failing actor only; ask callers get the exception itself."""

from __future__ import annotations

import logging
from typing import Any

import pykka
import pytest

from fleet.runtime.actorkit.pool import ActorPool

from .actors import Recorder

pytestmark = pytest.mark.timeout(30)


class FailingStart(Recorder):
    def on_start(self) -> None:
        raise RuntimeError("cannot start")


class FailingStop(Recorder):
    def on_stop(self) -> None:
        raise RuntimeError("cannot stop cleanly")


def test_an_exception_in_ask_reaches_the_caller_and_the_actor_lives_on(pool: ActorPool) -> None:
    ref = Recorder.start(pool=pool)
    with pytest.raises(ValueError, match="boom in Recorder"):
        ref.ask("boom", timeout=5)
    with pytest.raises(ValueError, match="boom in Recorder"):
        ref.proxy().on_receive("boom").get(timeout=5)
    assert ref.is_alive()
    assert ref.ask(1, timeout=5) == 1
    ref.stop(timeout=5)


def test_an_unhandled_failure_calls_on_failure_and_stops_that_actor_only(
    pool1: ActorPool, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[Any] = []
    failing = Recorder.start(pool=pool1, events=events)
    bystander = Recorder.start(pool=pool1)
    failing.tell(1)
    failing.tell("boom")
    failing.tell(2)  # queued behind the failure: never handled
    assert failing.actor_stopped.wait(5)
    assert bystander.ask("still here", timeout=5) == "still here"  # same (only) worker
    assert not failing.is_alive()
    assert events == ["start", 1, ("failure", ValueError)]  # on_failure, and no on_stop
    assert any(
        r.levelno == logging.ERROR and str(failing.actor_urn) in r.getMessage()
        for r in caplog.records
    )
    with pytest.raises(pykka.ActorDeadError):
        failing.tell(3)
    with pytest.raises(pykka.ActorDeadError):
        failing.ask(3, timeout=5)
    assert failing.stop(timeout=5) is False
    bystander.stop(timeout=5)


def test_a_failing_on_start_stops_the_actor_and_answers_waiting_asks(pool: ActorPool) -> None:
    ref = FailingStart.start(pool=pool)
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("hello", timeout=5)
    assert ref.actor_stopped.wait(5)
    assert not ref.is_alive()


def test_a_failing_on_stop_still_stops_the_actor(pool: ActorPool) -> None:
    ref = FailingStop.start(pool=pool)
    assert ref.stop(timeout=5) is True
    assert not ref.is_alive()
    assert pool.live_actors() == []


def test_a_base_exception_stops_that_actor_and_spares_the_worker(pool1: ActorPool) -> None:
    exiting = Recorder.start(pool=pool1)
    other = Recorder.start(pool=pool1)
    with pytest.raises(SystemExit):
        exiting.ask("exit", timeout=5)
    assert exiting.actor_stopped.wait(5)
    other.tell("exit")  # told, not asked: nobody to hand the exception to
    assert other.actor_stopped.wait(5)
    survivor = Recorder.start(pool=pool1)
    assert survivor.ask("worker alive", timeout=5) == "worker alive"
    survivor.stop(timeout=5)
