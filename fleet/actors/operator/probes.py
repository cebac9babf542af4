"""What ``/healthz`` and ``/readyz`` answer: the operator's liveness and readiness.

Why it exists: the kubelet restarts a container whose liveness probe fails and takes a
pod whose readiness probe fails out of its Services; both need a rule, and the rule is
the operator's, not the HTTP server's (:mod:`fleet.runtime.prometheus.endpoint` only
serves it). Alive: the process is not stopping (no actor died, no signal) and its event
loop runs: a restart would not help an operator merely waiting for NATS or Kubernetes.
Ready: the fleet index's initial sync is done, NATS is connected, and the Kubernetes API
answered its latest call within ``kube_within`` seconds (a watch is opened again at least
every watch timeout + read timeout, so a healthy operator calls it that often).
A standby replica (leader election, waiting for the Lease) is alive and ready while it
is not stopping: it does its job by waiting, and a rolling update must not wait on it.

Plain and synchronous; each check reads a few values others keep up to date, from the
HTTP server's thread. What it must never do: ask an actor, or block.
"""

from __future__ import annotations

from collections.abc import Callable

from fleet.runtime.actorkit.supervisor import Supervisor
from fleet.runtime.kube.health import ApiHealth


class Probes:
    def __init__(
        self,
        *,
        supervisor: Supervisor,
        loop_running: Callable[[], bool],
        nats_connected: Callable[[], bool],
        synced: Callable[[], bool],
        kube: ApiHealth,
        kube_within: float,
        standby: Callable[[], bool] = lambda: False,
    ) -> None:
        self._supervisor = supervisor
        self._loop_running = loop_running
        self._nats_connected = nats_connected
        self._synced = synced
        self._kube = kube
        self._kube_within = kube_within
        self._standby = standby

    def alive(self) -> str | None:
        """None while the operator runs (or waits to connect); else why it does not."""
        failure = self._supervisor.failure
        if failure is not None:
            return f"stopping: {failure}"
        if self._supervisor.stopping:
            return "stopping"
        if self._standby():
            return None
        if not self._loop_running():
            return "the event loop is not running"
        return None

    def ready(self) -> str | None:
        """None when the operator does its job; else every reason it does not, on one line."""
        if self._standby():
            return self.alive()
        problems = []
        if not self._synced():
            problems.append("initial sync not done")
        if not self._nats_connected():
            problems.append("NATS not connected")
        kube = self._kube.problem(within=self._kube_within)
        if kube is not None:
            problems.append(kube)
        alive = self.alive()
        if alive is not None:
            problems.append(alive)
        return "; ".join(problems) if problems else None
