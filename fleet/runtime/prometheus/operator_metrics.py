"""The operator's metrics: what its actors publish, as Prometheus families on one registry.

Why it exists: a person running fleet graphs and alerts on how many devices are online,
how each Deployment is doing, and whether writes, NATS and the Kubernetes API hold up.
:class:`OperatorMetrics` implements the actors' ``MetricsPort``
(``fleet/actors/operator/ports.py``) and the runtime's hooks (a batch of desired-state
writes, a NATS reconnect, a Kubernetes API error). The figures the actors publish (the
fleet's counts, each Deployment's aggregate and rollout) are plain values kept under a
lock and turned into metric families when scraped (:class:`_Figures`); the counters and
the histogram are ``prometheus_client``'s own, thread-safe.

Labels are bounded: a Deployment's namespace and name, a class, a rollout phase, an
operation, a result, a verb and a kind of error; never a device. All names start with
``fleet_operator_`` (docs/operator.md lists them).

What it must never do: block a publisher (a lock held for a store or a copy, nothing
more), or keep the figures of a Deployment whose actor is gone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Final, NamedTuple

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from fleet.contracts import AGENT_HEALTH_COUNTERS

from .agent_metrics import COUNTER_HELP as AGENT_HELP

PREFIX: Final = "fleet_operator_"
CLASSES: Final = ("running", "pending", "failed", "unreachable")
OPS: Final = ("put", "delete")
EVENT_RESULTS: Final = ("created", "patched", "dropped", "failed")
LAG_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
WRITE_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class DeploymentFigures(NamedTuple):
    owner: str
    targeted: int
    classes: tuple[int, ...]  # in the order of CLASSES
    rollout: tuple[str, int] | None  # (phase, revision)


class OperatorMetrics:
    """One registry of its own (several operators may run in one test process) with the
    operator's families and the default process, platform and garbage-collector
    collectors. ``rollout_phases``: every phase a rollout may be in, each shown as a
    series (0 but for the current one)."""

    def __init__(self, *, rollout_phases: Sequence[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self._lock = threading.Lock()
        self._synced = False
        self._known = 0
        self._online = 0
        self._deployments: dict[tuple[str, str], DeploymentFigures] = {}
        self._phases = tuple(rollout_phases)
        self._agent_totals: tuple[int, ...] = (0,) * len(AGENT_HEALTH_COUNTERS)
        self._agents_reporting = 0
        r = self.registry
        self._writes = Counter(
            f"{PREFIX}desired_writes", "Desired-state keys written (op: put or delete; "
            "result: ok or failed)", ["op", "result"], registry=r,
        )  # fmt: skip
        self._write_seconds = Histogram(
            f"{PREFIX}desired_write_batch_seconds", "How long a batch of desired-state writes "
            "(up to 1,000 keys) took, from submitted to its last acknowledgement",
            ["op"], buckets=WRITE_BUCKETS, registry=r,
        )  # fmt: skip
        for op in OPS:  # every series exists from the start, at 0
            self._write_seconds.labels(op)
            for result in ("ok", "failed"):
                self._writes.labels(op, result)
        self._status_lag = Histogram(
            f"{PREFIX}status_lag_seconds", "From the first change a Deployment's actor heard "
            "(a device's report, a target, a spec) to the acknowledgement of the status patch "
            "that shows it", buckets=LAG_BUCKETS, registry=r,
        )  # fmt: skip
        self._watch_lag = Gauge(
            f"{PREFIX}watch_lag_entries", "How many entries a bucket's watch was behind its "
            "stream when last sampled (every 5 s)", ["bucket"], registry=r,
        )  # fmt: skip
        self._reconnects = Counter(
            f"{PREFIX}nats_reconnects", "Times the NATS connection was made again", registry=r
        )
        self._kube_errors = Counter(
            f"{PREFIX}kube_api_errors", "Kubernetes API calls that failed (verb: list, get, "
            "create, patch, delete, watch; kind: unavailable, conflict, not_found, refused, "
            "other)", ["verb", "kind"], registry=r,
        )  # fmt: skip
        self._events = Counter(
            f"{PREFIX}events", "Kubernetes Event notes by outcome (result: created, patched, "
            "dropped, failed)", ["result"], registry=r,
        )  # fmt: skip
        for result in EVENT_RESULTS:
            self._events.labels(result)
        r.register(_Figures(self))

    # -- MetricsPort (the actors) ---------------------------------------------------------

    @property
    def is_synced(self) -> bool:
        """Whether the fleet index said its initial sync is done (``/readyz``)."""
        return self._synced

    def synced(self) -> None:
        self._synced = True

    def devices_known(self, count: int) -> None:
        self._known = count

    def device_online(self, online: bool) -> None:
        with self._lock:
            self._online += 1 if online else -1

    def deployment(
        self, key: tuple[str, str], *, owner: str, counts: Mapping[str, int],
        rollout: tuple[str, int] | None,
    ) -> None:  # fmt: skip
        figures = DeploymentFigures(
            owner=owner, targeted=counts.get("targeted", 0),
            classes=tuple(counts.get(c, 0) for c in CLASSES), rollout=rollout,
        )  # fmt: skip
        with self._lock:
            self._deployments[key] = figures

    def deployment_gone(self, key: tuple[str, str], *, owner: str) -> None:
        with self._lock:
            figures = self._deployments.get(key)
            if figures is not None and figures.owner == owner:
                del self._deployments[key]

    def desired_written(self, op: str, ok: int, failed: int, seconds: float) -> None:
        if ok:
            self._writes.labels(op, "ok").inc(ok)
        if failed:
            self._writes.labels(op, "failed").inc(failed)
        self._write_seconds.labels(op).observe(seconds)

    def nats_reconnected(self) -> None:
        self._reconnects.inc()

    def status_lag(self, seconds: float) -> None:
        self._status_lag.observe(max(0.0, seconds))

    def watch_lag(self, bucket: str, entries: int) -> None:
        self._watch_lag.labels(bucket).set(entries)

    def agent_figures(self, totals: Sequence[int], *, reporting: int) -> None:
        if len(totals) == len(AGENT_HEALTH_COUNTERS):
            self._agent_totals, self._agents_reporting = tuple(totals), reporting

    # -- the runtime's hooks --------------------------------------------------------------

    def events_recorded(self, result: str, count: int) -> None:
        if result in EVENT_RESULTS:  # bounded labels
            self._events.labels(result).inc(count)

    def kube_error(self, verb: str, kind: str) -> None:
        self._kube_errors.labels(verb, kind).inc()

    def snapshot(self) -> tuple[bool, int, int, dict[tuple[str, str], DeploymentFigures]]:
        """(synced, known, online, each Deployment's figures), as of now."""
        with self._lock:
            return self._synced, self._known, self._online, dict(self._deployments)

    def agents(self) -> tuple[tuple[int, ...], int]:
        """(the agents' counters summed fleet-wide, how many devices send them)."""
        return self._agent_totals, self._agents_reporting  # each one immutable value

    @property
    def rollout_phases(self) -> tuple[str, ...]:
        return self._phases


class _Figures(Collector):
    """The published figures as gauge families, built at each scrape."""

    def __init__(self, metrics: OperatorMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # built when collected; nothing to check for clashes

    def collect(self) -> Iterator[Metric]:
        synced, known, online, deployments = self._metrics.snapshot()
        yield _gauge("synced", "1 once the initial sync (the Deployments and the four "
                     "buckets read once) is done", 1 if synced else 0)  # fmt: skip
        yield _gauge("devices_known", "Devices that announced themselves (device-info) and "
                     "are not forgotten", known)  # fmt: skip
        yield _gauge("devices_online", "Known devices whose last heartbeat is within the "
                     "liveness timeout", online)  # fmt: skip
        yield _gauge("devices_unreachable", "Known devices that are not online",
                     max(0, known - online))  # fmt: skip
        keys = ["deployment_namespace", "deployment"]
        targeted = GaugeMetricFamily(
            f"{PREFIX}deployment_targeted_devices", "Devices a Deployment targets, as its "
            ".status.aggregate shows", labels=keys,
        )  # fmt: skip
        classes = GaugeMetricFamily(
            f"{PREFIX}deployment_devices", "A Deployment's targeted devices by class, as its "
            ".status.aggregate shows", labels=[*keys, "class"],
        )  # fmt: skip
        phase = GaugeMetricFamily(
            f"{PREFIX}deployment_rollout_phase", "1 for the phase of a Deployment's rollout "
            "(.status.rollout.phase), 0 for the others", labels=[*keys, "phase"],
        )  # fmt: skip
        revision = GaugeMetricFamily(
            f"{PREFIX}deployment_rollout_revision", "The revision a Deployment rolls out "
            "(.status.rollout.revision)", labels=keys,
        )  # fmt: skip
        phases = self._metrics.rollout_phases
        for (namespace, name), figures in sorted(deployments.items()):
            targeted.add_metric([namespace, name], figures.targeted)
            for cls, count in zip(CLASSES, figures.classes, strict=True):
                classes.add_metric([namespace, name, cls], count)
            if figures.rollout is not None:
                current, number = figures.rollout
                for each in dict.fromkeys((*phases, current)):
                    phase.add_metric([namespace, name, each], 1 if each == current else 0)
                revision.add_metric([namespace, name], number)
        yield from (targeted, classes, phase, revision)
        totals, reporting = self._metrics.agents()
        yield _gauge("agents_reporting", "Devices whose agent sends its counters in its "
                     "heartbeat (fleet_operator_agent_* add theirs up)", reporting)  # fmt: skip
        for name, total in zip(AGENT_HEALTH_COUNTERS, totals, strict=True):
            yield CounterMetricFamily(
                f"{PREFIX}agent_{name}", f"Fleet-wide, from heartbeats: {AGENT_HELP[name]}",
                value=total,
            )  # fmt: skip


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}{name}", documentation, value=value)
