"""Assembles the operator: its actors, the bucket watches, the Kubernetes watches.

Why it exists: the CLI and the tests start exactly the same operator. Start order: the
actor pool, the Device mirror, the fleet index, the source actors, then the watches that
feed them (so no event finds its actor missing). Stop order is the reverse: the watches
first, so nothing is told to a stopped actor.

What it must never do: leave a thread, a watch or an actor behind after :meth:`stop`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import pykka

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
)
from fleet.errors import FleetError, RevisionMismatch
from fleet.runtime.actorkit.pool import ActorPool
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.aiokit.timers import LoopTimers
from fleet.runtime.kube.client import DEPLOYMENTS, KubeClient, KubeGateway, namespaces_or_all
from fleet.runtime.kube.watch import ResourceWatcher
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.kv_batch import BatchedWatch, KvBatchWriter, SnapshotRead

from . import messages as m
from .fleet import FleetIndex, Query
from .mirror import DeviceMirror
from .retention import WEEK
from .sources import KubeSource, KvSource

logger = logging.getLogger(__name__)

BUCKETS = (BUCKET_DESIRED_STATE, BUCKET_DEVICE_STATE, BUCKET_DEVICE_INFO, BUCKET_DEVICE_HEARTBEAT)


def _deliver_to(ref: pykka.ActorRef[Any]) -> Callable[[tuple[KvEntry, ...]], None]:
    return lambda entries: ref.tell(m.KvBatch(entries=entries))


def _synced_to(ref: pykka.ActorRef[Any]) -> Callable[[], None]:
    return lambda: ref.tell(m.KvSynced())


class KeyDeleter:
    """:class:`~.ports.KeyDeleterPort` on the bus: deletes that are compare-and-swaps.

    Few and rare (the keys of devices silent for longer than the retention), so each is
    one ``Bus.delete(last=)``, at most ``concurrency`` groups at a time. (Its place is
    beside ``KvBatchWriter`` in :mod:`fleet.runtime.nats.kv_batch`, which has no CAS delete.)
    """

    def __init__(self, *, bus: Bus, loop_thread: EventLoopThread, concurrency: int = 64) -> None:
        self._bus = bus
        self._loop_thread = loop_thread
        self._concurrency = concurrency

    def delete_unchanged(
        self, groups: Sequence[Sequence[tuple[str, str, int]]]
    ) -> concurrent.futures.Future[list[str]]:
        bus = self._bus

        async def one(items: Sequence[tuple[str, str, int]]) -> str:
            for bucket, key, revision in items:
                try:
                    await bus.delete(bucket, key, last=revision)
                except RevisionMismatch:
                    return "changed"
                except FleetError as exc:
                    return f"failed: {exc}"
            return "deleted"

        async def run() -> list[str]:
            # A few workers over the groups, not a task per group: a sweep may hand over
            # 10,000 devices, and 10,000 pending tasks were most of its memory.
            results = [""] * len(groups)
            todo = iter(enumerate(groups))

            async def worker() -> None:
                for i, items in todo:
                    results[i] = await one(items)

            await asyncio.gather(*(worker() for _ in range(min(self._concurrency, len(groups)))))
            return results

        return self._loop_thread.submit(run())


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


class Operator:
    """The running operator; :meth:`start` and :meth:`stop` from one (non-loop) thread."""

    def __init__(
        self, *, bus: Bus, loop_thread: EventLoopThread, kube: KubeClient, config: OperatorConfig
    ) -> None:
        self._bus = bus
        self._loop_thread = loop_thread
        self._kube = kube
        self.config = config
        self._pool: ActorPool | None = None
        self._gateway: KubeGateway | None = None
        self._refs: list[pykka.ActorRef[Any]] = []
        self._watches: list[BatchedWatch | SnapshotRead] = []
        self._writer: KvBatchWriter | None = None
        self._watchers: list[ResourceWatcher] = []
        self.index: pykka.ActorRef[Any] | None = None
        self.mirror: pykka.ActorRef[Any] | None = None

    def start(self) -> None:
        config = self.config
        timers = LoopTimers(self._loop_thread)
        writer = self._writer = KvBatchWriter(
            bus=self._bus, loop_thread=self._loop_thread, in_flight=config.write_in_flight
        )
        self._pool = ActorPool(workers=config.pool_workers, name="operator-devices")
        self._gateway = KubeGateway(self._kube, device_workers=config.device_workers)
        self.mirror = DeviceMirror.start(
            api=self._gateway, timers=timers, qps=config.device_qps,
            max_inflight=2 * config.device_workers,
        )  # fmt: skip
        self._refs.append(self.mirror)
        scopes = namespaces_or_all(config.namespaces)
        self.index = FleetIndex.start(
            writer=writer,
            api=self._gateway,
            timers=timers,
            pool=self._pool,
            mirror=self.mirror,
            sources=(*BUCKETS, "kubernetes"),
            liveness_timeout=config.liveness_timeout,
            tick=config.tick,
            status_delay=config.status_delay,
            status_interval=config.status_interval,
            retention=config.device_retention,
            deleter=KeyDeleter(bus=self._bus, loop_thread=self._loop_thread),
        )
        self._refs.append(self.index)
        kube_source = KubeSource.start(index=self.index, scopes=len(scopes))
        self._refs.append(kube_source)
        for bucket in BUCKETS:
            source = KvSource.start(
                bucket=bucket, index=self.index, timers=timers, skip_window=config.skip_log_window
            )
            self._refs.append(source)
            # desired-state is read once: the operator is its writer (docs/operator.md).
            reader = SnapshotRead if bucket == BUCKET_DESIRED_STATE else BatchedWatch
            self._watches.append(
                reader(
                    self._bus,
                    bucket=bucket,
                    name=f"operator-{bucket}",
                    deliver=_deliver_to(source),
                    on_synced=_synced_to(source),
                )
            )

        async def start_watches() -> None:
            for watch in self._watches:
                await watch.start()

        self._loop_thread.run(start_watches(), timeout=30)
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
            self._watchers.append(watcher)
        logger.info("operator started (namespaces: %s)", ", ".join(map(str, scopes)))

    @property
    def watchers(self) -> list[ResourceWatcher]:
        return list(self._watchers)

    def summary(self, *, timeout: float = 5.0) -> dict[str, Any]:
        assert self.index is not None
        result = self.index.ask(Query(), timeout=timeout)
        assert isinstance(result, dict)
        return result

    def stop(self, *, timeout: float = 10.0) -> None:
        for watcher in self._watchers:
            watcher.stop(timeout=timeout)
        self._watchers.clear()

        async def stop_watches() -> None:
            for watch in self._watches:
                await watch.stop()

        if self._watches:
            self._loop_thread.run(stop_watches(), timeout=timeout)
            self._watches.clear()
        for ref in reversed(self._refs):
            with contextlib.suppress(pykka.ActorDeadError):
                ref.stop(timeout=timeout)
        self._refs.clear()
        if self._pool is not None:
            self._pool.shutdown(timeout=timeout)
            self._pool = None
        if self._gateway is not None:
            self._gateway.shutdown()
            self._gateway = None
        if self._writer is not None:
            with contextlib.suppress(Exception):  # the loop or NATS already gone
                self._writer.close(timeout=timeout)
            self._writer = None
        logger.info("operator stopped")
