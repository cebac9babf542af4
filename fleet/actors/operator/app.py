"""Assembles the operator: its actors, the bucket watches, the Kubernetes watches.

Why it exists: the CLI and the tests start exactly the same operator, through the same
:class:`~fleet.runtime.actorkit.supervisor.Supervisor` the agent uses (order:
:class:`Operator`).

What it must never do: leave a thread, a watch or an actor behind after :meth:`stop`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any

import msgspec
import pykka

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
)
from fleet.runtime.actorkit.pool import ActorPool
from fleet.runtime.actorkit.supervisor import Supervisor
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.aiokit.timers import LoopTimers
from fleet.runtime.kube.client import DEPLOYMENTS, KubeClient
from fleet.runtime.kube.event_recorder import EventRecorder
from fleet.runtime.kube.events import EventLimits
from fleet.runtime.kube.file_objects import FileObjects
from fleet.runtime.kube.gateway import KubeGateway, namespaces_or_all
from fleet.runtime.kube.watch import ResourceWatcher
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.kv_batch import KvBatchWriter
from fleet.runtime.nats.watch import Watch
from fleet.runtime.nats.watch_lag import WatchLag

from . import messages as m
from .enrollment.service import EnrollmentSetup, follow_devices, start_enrollment
from .fleet import FleetIndex, Query
from .mirror import DeviceMirror
from .ports import NO_EVENTS, NO_METRICS, EventsPort, MetricsPort
from .retention import WEEK
from .shards import WHOLE, Shard
from .sources import KubeSource, KvSource

logger = logging.getLogger(__name__)

BUCKETS = (BUCKET_DESIRED_STATE, BUCKET_DEVICE_STATE, BUCKET_DEVICE_INFO, BUCKET_DEVICE_HEARTBEAT)


def _deliver_to(ref: pykka.ActorRef[Any]) -> Callable[[tuple[KvEntry, ...]], None]:
    return lambda entries: ref.tell(m.KvBatch(entries=entries))


def _synced_to(ref: pykka.ActorRef[Any]) -> Callable[[], None]:
    return lambda: ref.tell(m.KvSynced())


class OperatorConfig(msgspec.Struct, frozen=True, kw_only=True):
    liveness_timeout: float = 30.0
    device_retention: float = WEEK  # 0: never forget a silent device
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    status_delay: float = 0.1
    status_interval: float = 0.5
    tick: float = 1.0
    device_qps: float = 50.0
    device_workers: int = 4
    pool_workers: int = 2
    watch_timeout: int = 60
    watch_read_timeout: float = 75.0
    write_in_flight: int = 256
    skip_log_window: float = 10.0
    events: EventLimits | None = EventLimits()  # None: post no Kubernetes Events
    # the namespaces whose Deployments may be granted privileges (None: every namespace)
    privileged_namespaces: frozenset[str] | None = None
    # how often the ConfigMaps and Secrets Deployments' files name are read again: the
    # longest a changed one takes to reach the devices (plus a write)
    file_objects_interval: float = 10.0
    # which Deployments and devices this process owns (--shards, --shard-index)
    shard: Shard = WHOLE


class Operator:
    """The running operator; :meth:`start` and :meth:`stop` from one (non-loop) thread.

    Its parts are started through a :class:`~fleet.runtime.actorkit.supervisor.Supervisor`
    (``supervisor``: the process's own, as ``fleet-operator`` passes it; else one of its
    own), in dependency order, each ready before the next: the Kubernetes gateway, the
    batch writer and the device actors' pool (what the actors use), then the Device
    mirror, the fleet index, the source actors, the bucket watches and the Kubernetes
    watches that feed them (so no event finds its actor missing). They stop in reverse:
    the watches first, so nothing is told to a stopped actor; anything that would not
    stop is reported.
    """

    def __init__(
        self,
        *,
        bus: Bus,
        loop_thread: EventLoopThread,
        kube: KubeClient,
        config: OperatorConfig,
        supervisor: Supervisor | None = None,
        enrollment: EnrollmentSetup | None = None,
        metrics: MetricsPort = NO_METRICS,
        dashboard: Callable[[m.Msg], None] | None = None,
    ) -> None:
        """``dashboard``: handed every decoded info, heartbeat, report and Deployment
        batch too (``--dashboard-address``; docs/dashboard.md); it must never block.
        ``enrollment``: answer enrollment and renewal requests and revoke keys
        (``--auth-dir``; docs/security.md); None: none of it, as before. ``metrics``:
        where the actors, the batch writer and the bus publish their figures
        (``/metrics``; docs/operator.md)."""
        self._metrics = metrics
        self._dashboard = dashboard
        self._bus = bus
        self._enrollment = enrollment
        self._loop_thread = loop_thread
        self._kube = kube
        self.config = config
        self.supervisor = (
            supervisor if supervisor is not None else Supervisor(name="fleet-operator")
        )
        self._watchers: list[ResourceWatcher] = []
        self.index: pykka.ActorRef[Any] | None = None
        self.mirror: pykka.ActorRef[Any] | None = None
        self.desk: pykka.ActorRef[Any] | None = None
        self.files: FileObjects | None = None  # ConfigMaps, Secrets, keys of files
        self.events: EventRecorder | None = None

    def start(self) -> None:
        config, sup, loop, metrics = self.config, self.supervisor, self._loop_thread, self._metrics
        timers = LoopTimers(loop)
        counting = self._bus.add_reconnect_listener(metrics.nats_reconnected)
        sup.add_cleanup("nats reconnect count", counting)  # calling it removes the listener
        gateway = KubeGateway(self._kube, device_workers=config.device_workers)
        sup.add_cleanup("kubernetes gateway", gateway.shutdown)
        events: EventsPort = NO_EVENTS
        if config.events is not None:  # before the actors that post, stopped after them
            self.events = events = EventRecorder(
                self._kube, limits=config.events, observe=metrics.events_recorded
            )
            events.start()
            sup.add_cleanup("kubernetes events", events.stop)
        writer = KvBatchWriter(kv=self._bus.kv, loop_thread=loop, in_flight=config.write_in_flight,
                               observe=metrics.desired_written)  # fmt: skip
        sup.add_cleanup("desired-state writer", lambda: _close(writer))
        pool = ActorPool(workers=config.pool_workers, name="operator-devices")
        sup.add_cleanup("device actor pool", lambda: _shut_down(pool))
        self.mirror = mirror = sup.start(
            "device mirror",
            lambda: DeviceMirror.start(
                api=gateway, timers=timers, qps=config.device_qps,
                max_inflight=2 * config.device_workers,
            ),
        )  # fmt: skip
        scopes = namespaces_or_all(config.namespaces)
        enrolling = self._enrollment is not None
        # With enrollment, devices are targeted by their approved labels: nothing is
        # targeted before the Device resources holding them are listed.
        sources = (*BUCKETS, "kubernetes", *((m.APPROVED_LABELS,) if enrolling else ()))
        # the ConfigMaps and Secrets Deployments' files name (get only; docs/workloads.md)
        self.files = files = FileObjects(self._kube, interval=config.file_objects_interval)
        files.start()
        sup.add_cleanup("file objects", functools.partial(files.stop, timeout=10.0))
        self.index = index = sup.start(
            "fleet index",
            lambda: FleetIndex.start(
                writer=writer, api=gateway, timers=timers, pool=pool, mirror=mirror,
                sources=sources, liveness_timeout=config.liveness_timeout,
                tick=config.tick, status_delay=config.status_delay,
                status_interval=config.status_interval, retention=config.device_retention,
                deleter=writer, enforce_approved_labels=enrolling, metrics=metrics,
                events=events, privileged_namespaces=config.privileged_namespaces,
                file_sources=files, shard=config.shard,
            ),
        )  # fmt: skip
        kube_source = sup.start(
            "kubernetes source",
            lambda: KubeSource.start(index=index, scopes=len(scopes), tap=self._dashboard),
        )
        followed: dict[str, Watch] = {}
        for bucket in BUCKETS:
            source = sup.start(
                f"{bucket} source",
                functools.partial(
                    KvSource.start, bucket=bucket, index=index, timers=timers,
                    skip_window=config.skip_log_window,
                    tap=self._dashboard if bucket != BUCKET_DESIRED_STATE else None,
                ),
            )  # fmt: skip
            # desired-state is read once: the operator is its writer (docs/operator.md).
            watch = Watch(
                self._bus.kv, bucket, name=f"operator-{bucket}", on_batch=_deliver_to(source),
                on_synced=_synced_to(source), follow=bucket != BUCKET_DESIRED_STATE,
                raw=bucket == BUCKET_DEVICE_HEARTBEAT,  # 10,000 a second at 100,000 devices
                batch_delay=0.05 if bucket == BUCKET_DEVICE_HEARTBEAT else 0.0,
            )  # fmt: skip
            loop.run(_started(watch), timeout=30)
            sup.add_cleanup(f"{bucket} watch", functools.partial(_stop_watch, loop, watch))
            if bucket != BUCKET_DESIRED_STATE:
                followed[bucket] = watch
        lag = WatchLag(self._bus.kv, followed, publish=metrics.watch_lag)
        loop.run(_call(lag.start), timeout=5)
        sup.add_cleanup("watch lag", lambda: loop.run(lag.stop(), timeout=10.0))
        for scope in scopes:
            watcher = ResourceWatcher(
                client=self._kube,
                resource=DEPLOYMENTS,
                namespace=scope,
                on_listed=KubeSource.listed(kube_source),
                on_event=KubeSource.event(kube_source),
                timeout_seconds=config.watch_timeout,
                read_timeout=config.watch_read_timeout,
            )
            watcher.start()
            sup.add_cleanup(f"deployment watch {scope or '(all)'}",
                            functools.partial(watcher.stop, timeout=10.0))  # fmt: skip
            self._watchers.append(watcher)
        if self._enrollment is not None and config.shard.answers_enrollment:
            self.desk = start_enrollment(
                setup=self._enrollment, supervisor=sup, loop=loop,
                kube=self._kube, watch_timeout=config.watch_timeout,
                read_timeout=config.watch_read_timeout, index=index, keys=files,
            )  # fmt: skip
        elif self._enrollment is not None:  # shard 0 answers; this one reads the Devices
            follow_devices(
                supervisor=sup, kube=self._kube, watch_timeout=config.watch_timeout,
                read_timeout=config.watch_read_timeout, index=index, keys=files,
            )  # fmt: skip
        logger.info(
            "operator started (namespaces: %s%s)", ", ".join(map(str, scopes)),
            "" if config.shard.whole else f"; {config.shard}",
        )  # fmt: skip

    @property
    def watchers(self) -> list[ResourceWatcher]:
        return list(self._watchers)

    def summary(self, *, timeout: float = 5.0) -> dict[str, Any]:
        assert self.index is not None
        result = self.index.ask(Query(), timeout=timeout)
        assert isinstance(result, dict)
        return result

    def stop(self, *, timeout: float = 10.0) -> list[str]:
        """Stop every part in reverse order; the names of those that would not stop."""
        leftovers = self.supervisor.stop(timeout=timeout)
        self._watchers.clear()
        logger.info("operator stopped")
        return leftovers


async def _started(watch: Watch) -> None:
    watch.start()


async def _call(start: Callable[[], None]) -> None:
    start()  # on the loop: a start() that makes its task there


def _stop_watch(loop: EventLoopThread, watch: Watch) -> None:
    loop.run(watch.stop(), timeout=10.0)


def _close(writer: KvBatchWriter) -> None:
    with contextlib.suppress(Exception):  # the loop or NATS already gone: nothing to close
        writer.close(timeout=10.0)


def _shut_down(pool: ActorPool) -> None:
    left = pool.shutdown(timeout=10.0)
    if left:
        raise RuntimeError(f"{len(left)} device actors did not stop: {left[:5]}")
