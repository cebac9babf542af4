"""How far the operator's actors are behind their mail, read when Prometheus scrapes.

Why it exists: "the operator is slow" is one of two things, the bus ahead of the bucket
watches (``fleet_operator_watch_lag_entries``) or actors behind their mailboxes; this says
which actors. At each scrape :class:`MailboxDepths` reads the inbox of every running
``pykka`` threading actor (the fleet index, the mirror, the sources, each Deployment's
actor), grouped by the actor's class (a bounded label: a handful of classes, however many
Deployments), and the run queue of every actor pool (the device actors: how many have mail
waiting for a worker thread).

What it must never do: take an actor's lock or wait on one (``qsize`` reads a count), or
label a series with a Deployment or a device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

PREFIX = "fleet_operator_"


class _Pool(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def runnable(self) -> int: ...


class MailboxDepths(Collector):
    """``actors()``: the running threading actors' refs (``pykka.ActorRegistry.get_all``);
    ``pools()``: the live actor pools (``fleet.runtime.actorkit.pool.live_pools``)."""

    def __init__(
        self, *, actors: Callable[[], Iterable[Any]], pools: Callable[[], Iterable[_Pool]]
    ):
        self._actors, self._pools = actors, pools

    def describe(self) -> list[Metric]:
        return []  # built when collected

    def collect(self) -> Iterator[Metric]:
        total: dict[str, int] = {}
        largest: dict[str, int] = {}
        for ref in self._actors():
            try:
                name, depth = ref.actor_class.__name__, int(ref.actor_inbox.qsize())
            except Exception:  # a ref stopping as we look: skip it
                continue
            total[name] = total.get(name, 0) + depth
            largest[name] = max(largest.get(name, 0), depth)
        messages = GaugeMetricFamily(
            f"{PREFIX}mailbox_messages", "Messages waiting in the mailboxes of the operator's "
            "threading actors, summed by the actor's class", labels=["actor"],
        )  # fmt: skip
        deepest = GaugeMetricFamily(
            f"{PREFIX}mailbox_largest", "The most messages waiting in one mailbox of an "
            "actor of that class", labels=["actor"],
        )  # fmt: skip
        for name in sorted(total):
            messages.add_metric([name], total[name])
            deepest.add_metric([name], largest[name])
        runnable = GaugeMetricFamily(
            f"{PREFIX}pool_runnable_actors", "Pooled actors (the device actors) with mail "
            "waiting for a worker thread", labels=["pool"],
        )  # fmt: skip
        for pool in self._pools():
            runnable.add_metric([pool.name], pool.runnable)
        yield from (messages, deepest, runnable)
