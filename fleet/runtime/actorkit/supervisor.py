"""Start a process's actors in dependency order and stop them in reverse.

Why it exists: the agent and the operator each run a handful of long-lived actors over
an event loop and a NATS connection. Starting them in order (each one ready before the
next starts) and stopping them in reverse (consumers before the things they use) is
the same for both, and so is reporting an actor that refuses to stop: that is a bug,
and it is logged as one (as Mopidy does), not hidden.

What it must never do: stop anything while it is still starting the next actor, or
swallow the names of leftovers.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import pykka
from pykka.messages import ProxyGetAttr

from fleet.runtime.actorkit.failfast import EXIT_ACTOR_DIED
from fleet.runtime.actorkit.pool import live_pools

logger = logging.getLogger(__name__)


class Supervisor:
    """An ordered list of started actors and cleanups, stopped in reverse."""

    def __init__(self, *, name: str) -> None:
        self.name = name
        self._steps: list[tuple[str, Callable[[float], bool]]] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.failure: str | None = None
        self._previous: dict[int, Any] | None = None  # signal handlers before catch_signals

    def start(self, name: str, factory: Callable[[], pykka.ActorRef[Any]]) -> pykka.ActorRef[Any]:
        """Start one actor and wait until its ``on_start`` has run.

        pykka runs ``on_start`` before the first message, so reading an attribute
        through ``ask`` returns only once the actor is ready. An actor whose
        ``on_start`` failed is dead, and the ask raises ``ActorDeadError``.
        """
        ref = factory()

        def stop(timeout: float) -> bool:
            try:
                ref.stop(block=True, timeout=timeout)
            except pykka.ActorDeadError:
                return True
            except pykka.Timeout:
                return False
            return not ref.is_alive()

        with self._lock:
            self._steps.append((name, stop))
        ref.ask(ProxyGetAttr(attr_path=("actor_urn",)), timeout=30)
        logger.debug("%s: started %s", self.name, name)
        return ref

    def add_cleanup(self, name: str, fn: Callable[[], None]) -> None:
        """Register a non-actor resource (the loop, the bus) to close in order."""

        def stop(timeout: float) -> bool:
            try:
                fn()
            except Exception:
                logger.exception("%s: cleanup %s failed", self.name, name)
                return False
            return True

        with self._lock:
            self._steps.append((name, stop))

    def stop(self, *, timeout: float = 10.0) -> list[str]:
        """Stop everything in reverse order; return (and log) what would not stop."""
        self._stopping.set()
        with self._lock:
            steps, self._steps = self._steps, []
        leftovers = []
        for name, stop in reversed(steps):
            if not stop(timeout):
                leftovers.append(name)
        if leftovers:
            logger.error("%s: still running after stop (a bug): %s", self.name, leftovers)
        pooled = [ref for pool in live_pools() for ref in pool.live_actors()]
        for ref in [*pykka.ActorRegistry.get_all(), *pooled]:
            logger.error("%s: actor left running (a bug): %s", self.name, ref)
        return leftovers

    @property
    def stopping(self) -> bool:
        """A stop was asked for (a signal, :meth:`request_stop`, :meth:`fail`) or began."""
        return self._stopping.is_set()

    @property
    def stop_event(self) -> threading.Event:
        """Set once a stop was asked for: what a wait that must end with the process
        waits on (the operator's wait for the leader Lease)."""
        return self._stopping

    def request_stop(self) -> None:
        """Ask :meth:`run_until_signal` to return (from any thread)."""
        self._stopping.set()

    def fail(self, reason: str) -> None:
        """Something this process cannot run without died (from any thread): stop it all
        in order and make :meth:`run_until_signal` return ``EXIT_ACTOR_DIED``, so that
        systemd or Kubernetes restart the process instead of keeping a husk alive."""
        with self._lock:
            first = self.failure is None
            if first:
                self.failure = reason
        if first:
            logger.critical(
                "%s: stopping with exit code %d: %s", self.name, EXIT_ACTOR_DIED, reason
            )
        self._stopping.set()

    def catch_signals(self) -> None:
        """From now on SIGTERM and SIGINT ask for a stop (:meth:`run_until_signal` carries
        it out). Called before a start that already does work, a signal during the start
        is a clean stop once it is done, not the default death (exit -15)."""
        if self._previous is None:
            self._previous = {
                sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
            }

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        logger.info("%s: received %s, stopping", self.name, signal.Signals(signum).name)
        self._stopping.set()

    def run_until_signal(self, *, timeout: float = 10.0) -> int:
        """Block until SIGTERM/SIGINT, :meth:`request_stop` or :meth:`fail`, then stop.

        Returns 0 after a clean stop, 1 if something would not stop, and
        ``EXIT_ACTOR_DIED`` (70) after :meth:`fail`.
        """

        self.catch_signals()
        try:
            while not self._stopping.wait(0.5):
                pass
        finally:
            previous, self._previous = self._previous or {}, None
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        leftovers = self.stop(timeout=timeout)
        if self.failure is not None:
            return EXIT_ACTOR_DIED
        return 0 if not leftovers else 1
