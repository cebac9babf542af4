"""What this agent run has done: the counters its heartbeat and its metrics show.

Why it exists: a person running a fleet wants to know, without scraping each device,
whether agents keep failing reconcile passes or pulls, or keep repairing drift. Each
agent counts (this module), puts the counters in every heartbeat
(:class:`~fleet.contracts.AgentHealth`, so the operator sums them fleet-wide), and, when
its metrics port is on, shows them with durations to Prometheus (an
:class:`Observer`, in ``fleet/runtime/prometheus/agent_metrics.py``).

The reconcilers (one thread each), the device actor and the desired feed (on the event
loop) all count into one :class:`AgentTally`, so it takes a lock for each change: a few
per reconcile pass, nothing per message.

What it must never do: block (the lock guards a few integer additions), fail, or let a
counter go down within one run (the operator reads a decrease as a new run).
"""

from __future__ import annotations

import threading
from typing import Protocol

from fleet.contracts import AgentHealth

OUTCOMES = ("running", "failed", "retry", "removed")
"""How a reconcile pass ended: the phase it reported, or ``retry`` (a backoff)."""


class Observer(Protocol):
    """Where durations go (the runtime's Prometheus histograms). Must return at once."""

    def reconciled(self, seconds: float, outcome: str) -> None: ...

    def pulled(self, seconds: float, *, ok: bool) -> None: ...


class AgentTally:
    """Thread-safe counters of one agent run, with an optional duration :class:`Observer`."""

    def __init__(self, observer: Observer | None = None) -> None:
        self._lock = threading.Lock()
        self._observer = observer
        self._reconciles = 0
        self._reconcile_failures = 0
        self._pulls = 0
        self._pull_failures = 0
        self._drift_repairs = 0
        self._feed_rereads = 0

    def observe(self, observer: Observer) -> None:
        """Send durations from now on to ``observer`` (the metrics port, once it is up)."""
        self._observer = observer

    def reconciled(self, seconds: float, *, outcome: str, drift: bool = False) -> None:
        """One pass ended with ``outcome`` (one of :data:`OUTCOMES`); ``drift``: it was not
        asked for by a desired-state change and it had to touch a container."""
        with self._lock:
            self._reconciles += 1
            if outcome in ("failed", "retry"):
                self._reconcile_failures += 1
            if drift:
                self._drift_repairs += 1
        if self._observer is not None:
            self._observer.reconciled(seconds, outcome)

    def pulled(self, seconds: float, *, ok: bool) -> None:
        with self._lock:
            self._pulls += 1
            if not ok:
                self._pull_failures += 1
        if self._observer is not None:
            self._observer.pulled(seconds, ok=ok)

    def feed_reread(self) -> None:
        with self._lock:
            self._feed_rereads += 1

    def health(self) -> AgentHealth:
        """The counters as the heartbeat carries them."""
        with self._lock:
            return AgentHealth(
                reconciles=self._reconciles,
                reconcile_failures=self._reconcile_failures,
                pulls=self._pulls,
                pull_failures=self._pull_failures,
                drift_repairs=self._drift_repairs,
                feed_rereads=self._feed_rereads,
            )
