"""The agent's own metrics, for a device whose owner scrapes it (off by default).

Why it exists: most fleets read agent figures from the operator, which sums what every
heartbeat carries (``fleet_operator_agent_*``); a device that is scraped directly (a lab
rack, a site with its own Prometheus) also wants the durations, which no heartbeat
carries. :class:`AgentMetrics` is the tally's duration observer
(``fleet/actors/agent/tally.py``: reconcile passes and pulls as histograms) and shows the
tally's counters (read through ``health``, the very numbers the heartbeat carries) and
whether NATS is connected. All names start with ``fleet_agent_``; labels are an outcome
or a result, never a container or an image.

What it must never do: block the reconcilers that report to it (``prometheus_client``'s
histograms take a lock for one addition), or count anything the heartbeat does not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Histogram,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from fleet.contracts import AGENT_HEALTH_COUNTERS, AgentHealth

PREFIX: Final = "fleet_agent_"
OUTCOMES: Final = ("running", "failed", "retry", "removed")  # the tally's (fleet/actors/agent)
RECONCILE_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
PULL_BUCKETS: Final = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
COUNTER_HELP: Final = {
    "reconciles": "Reconcile passes (one deployment driven towards its desired state once)",
    "reconcile_failures": "Reconcile passes that ended Failed or were retried",
    "pulls": "Image pulls started",
    "pull_failures": "Image pulls that failed",
    "drift_repairs": "Passes not asked for by a desired-state change that had to touch a "
    "container (removed, stopped or changed by hand, or exited for good)",
    "feed_rereads": "Full re-reads of the device's desired state (periodic or on reconnect)",
}


class AgentMetrics:
    """One registry: the agent's histograms, its counters (from ``health``), whether NATS
    is connected (``connected``), and the process, platform and GC collectors."""

    def __init__(self, *, health: Callable[[], AgentHealth], connected: Callable[[], bool]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self._reconcile_seconds = Histogram(
            f"{PREFIX}reconcile_seconds", "How long a reconcile pass took, by how it ended "
            "(outcome: running, failed, retry, removed)", ["outcome"],
            buckets=RECONCILE_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self._pull_seconds = Histogram(
            f"{PREFIX}pull_seconds", "How long an image pull took (result: ok or failed)",
            ["result"], buckets=PULL_BUCKETS, registry=self.registry,
        )  # fmt: skip
        for outcome in OUTCOMES:  # every series exists from the start
            self._reconcile_seconds.labels(outcome)
        for result in ("ok", "failed"):
            self._pull_seconds.labels(result)
        self.registry.register(_Counters(health=health, connected=connected))

    # -- the tally's Observer --------------------------------------------------------------

    def reconciled(self, seconds: float, outcome: str) -> None:
        if outcome in OUTCOMES:
            self._reconcile_seconds.labels(outcome).observe(seconds)

    def pulled(self, seconds: float, *, ok: bool) -> None:
        self._pull_seconds.labels("ok" if ok else "failed").observe(seconds)


class _Counters(Collector):
    def __init__(self, *, health: Callable[[], AgentHealth], connected: Callable[[], bool]):
        self._health, self._connected = health, connected

    def describe(self) -> list[Metric]:
        return list(self._families(AgentHealth(), connected=False))

    def collect(self) -> Iterator[Metric]:
        return self._families(self._health(), connected=self._connected())

    def _families(self, health: AgentHealth, *, connected: bool) -> Iterator[Metric]:
        for name, value in zip(AGENT_HEALTH_COUNTERS, health.counters(), strict=True):
            yield CounterMetricFamily(f"{PREFIX}{name}", COUNTER_HELP[name], value=value)
        yield GaugeMetricFamily(
            f"{PREFIX}nats_connected", "1 while the agent is connected to NATS, else 0",
            value=1 if connected else 0,
        )  # fmt: skip
