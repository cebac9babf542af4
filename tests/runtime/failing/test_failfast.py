"""An actor that dies stops its process with exit code 70 and one CRITICAL line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from fleet.runtime.actorkit import failfast
from fleet.runtime.actorkit.failfast import EXIT_ACTOR_DIED, SupervisedActor
from fleet.runtime.actorkit.pool import ActorPool
from fleet.runtime.actorkit.pooled import PooledActor
from fleet.runtime.actorkit.supervisor import Supervisor

pytestmark = [pytest.mark.timeout(60), pytest.mark.actor_death]


def wait_for_death(text: str) -> None:
    """pykka marks the actor stopped before it calls ``on_failure``: wait for the report."""
    deadline = time.monotonic() + 5
    while not any(text in d for d in failfast.deaths()):
        assert time.monotonic() < deadline, f"no death mentioning {text!r}: {failfast.deaths()}"
        time.sleep(0.01)


class Fragile(SupervisedActor):
    def on_receive(self, message: object) -> object:
        if message == "break":
            raise RuntimeError("a bug in a handler")
        return message


class FragilePooled(PooledActor):
    def on_receive(self, message: object) -> object:
        if message == "break":
            raise RuntimeError("a bug in a pooled handler")
        return message


def test_a_death_without_a_handler_is_logged_and_recorded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ref = Fragile.start()
    ref.tell("break")
    wait_for_death("a bug in a handler")
    critical = [r for r in caplog.records if r.levelname == "CRITICAL"]
    assert critical
    assert "must stop" in critical[0].getMessage()


def test_an_ask_that_raises_is_the_callers_error_not_a_death() -> None:
    ref = Fragile.start()
    with pytest.raises(RuntimeError):
        ref.ask("break", timeout=5)
    assert ref.is_alive()
    assert failfast.deaths() == []
    ref.stop()


def test_a_death_makes_the_supervisor_stop_everything_and_exit_70() -> None:
    sup = Supervisor(name="test")
    uninstall = failfast.install(sup.fail)
    try:
        bystander = sup.start("bystander", Fragile.start)
        fragile = sup.start("fragile", Fragile.start)
        # run_until_signal installs signal handlers, which only the main thread may, and
        # would block this test: the subprocess test below runs it for real.
        fragile.tell("break")
        assert sup._stopping.wait(5)  # the death asked the supervisor to stop
        assert sup.stop(timeout=5) == []
        assert sup.failure is not None
        assert "a bug in a handler" in sup.failure
        assert not bystander.is_alive()
    finally:
        uninstall()


def test_a_pooled_actor_death_is_reported_too() -> None:
    pool = ActorPool(workers=1, name="test-failfast")
    try:
        ref = FragilePooled.start(pool=pool)
        ref.tell("break")
        wait_for_death("a bug in a pooled handler")
    finally:
        pool.shutdown(timeout=5)


def test_a_real_process_exits_70_when_an_actor_dies() -> None:
    script = textwrap.dedent(
        """
        import logging, sys, threading
        from fleet.runtime.actorkit import failfast
        from fleet.runtime.actorkit.failfast import SupervisedActor
        from fleet.runtime.actorkit.supervisor import Supervisor

        logging.basicConfig(level=logging.INFO)

        class Fragile(SupervisedActor):
            def on_receive(self, message):
                raise RuntimeError("boom from a decoder")

        sup = Supervisor(name="proc")
        failfast.install(sup.fail)
        ref = sup.start("fragile", Fragile.start)
        threading.Timer(0.2, lambda: ref.tell("x")).start()
        sys.exit(sup.run_until_signal(timeout=5))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=50, check=False
    )
    assert proc.returncode == EXIT_ACTOR_DIED, proc.stderr
    assert "CRITICAL" in proc.stderr
    assert "boom from a decoder" in proc.stderr
