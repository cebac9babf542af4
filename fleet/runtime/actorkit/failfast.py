"""An actor (or a long-lived task) that dies takes its process down: loudly, non-zero.

Why it exists: pykka stops an actor whose handler raised on a told message and leaves
the process running. A live process with a dead actor inside is worse than a crash: a
dead heartbeat source looked like a fleet of unreachable devices, a dead bucket reader
froze every aggregate, and systemd or Kubernetes saw nothing wrong, so nothing
restarted it. Every fleet actor derives from :class:`SupervisedActor` (or
:class:`~fleet.runtime.actorkit.pooled.PooledActor`, which does the same); when one dies,
:func:`actor_died` logs one CRITICAL line naming it and the exception and calls the
handler the entry point installed (the supervisor's ``fail``: stop in order, exit 70).
Long-lived tasks on the event loop report the same way (:mod:`fleet.runtime.aiokit.tasks`).

Without an installed handler (tests that run an agent or an operator in-process) the
death is logged and recorded in :func:`deaths`; the test suite fails any test that
leaves one there without expecting it.

What it must never do: swallow a death, or call the handler while holding its lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

import pykka

logger = logging.getLogger(__name__)

EXIT_ACTOR_DIED = 70  # EX_SOFTWARE (sysexits.h): an internal error, restart me

_lock = threading.Lock()
_handler: Callable[[str], None] | None = None
_deaths: list[str] = []


def install(handler: Callable[[str], None]) -> Callable[[], None]:
    """Call ``handler(reason)`` when an actor dies; returns a function that uninstalls it."""
    global _handler  # noqa: PLW0603 - one handler per process, set by its entry point
    with _lock:
        _handler = handler

    def uninstall() -> None:
        global _handler  # noqa: PLW0603
        with _lock:
            if _handler is handler:
                _handler = None

    return uninstall


def actor_died(actor: object, exc: BaseException | None) -> None:
    """Report ``actor``'s death by ``exc``; the installed handler decides the rest."""
    report_death(f"actor {actor}", exc)


def report_death(what: str, exc: BaseException | None) -> None:
    """Report that ``what`` (an actor, a long-lived task) died, by ``exc`` or by ending
    when it never should; log it CRITICAL and call the installed handler."""
    cause = f"{type(exc).__name__}: {exc}" if exc is not None else "it ended, and must not"
    reason = f"{what} died: {cause}"
    logger.critical("%s; the process must stop so that its supervisor restarts it", reason)
    with _lock:
        _deaths.append(reason)
        handler = _handler
    if handler is not None:
        handler(reason)


def deaths() -> list[str]:
    """Every death reported in this process so far (tests read and clear it)."""
    with _lock:
        return list(_deaths)


def clear_deaths() -> None:
    with _lock:
        _deaths.clear()


class SupervisedActor(pykka.ThreadingActor):
    """A ``pykka.ThreadingActor`` whose death is reported by :func:`actor_died`.

    pykka calls ``on_failure`` (its public hook) after an exception escaped a told
    message and the actor was stopped. An exception in ``on_start`` is not reported
    here: :meth:`fleet.runtime.actorkit.supervisor.Supervisor.start` sees it as a start failure.
    """

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        actor_died(self, exception_value)
