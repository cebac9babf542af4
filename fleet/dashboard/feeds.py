"""Feeding the dashboard outside the operator: the buckets' watches and the Deployment watch.

Why it exists: ``fleetctl dashboard`` has no operator to tap, so it watches what the
operator watches: device-info, device-heartbeat and device-state (decoded by the
operator's own source decoders, :data:`fleet.actors.operator.sources.DECODERS`: the same
entries skipped, for the same reasons) and the Deployment resources of every namespace
(their status is the operator's aggregate). Each decoded batch goes to the hub's feed.

What it must never do: write to a bucket or to Kubernetes, or stop on a bad entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fleet.actors.operator import messages as m
from fleet.actors.operator.skiplog import SkipLog
from fleet.actors.operator.sources import COALESCED, DECODERS, latest_per_key
from fleet.contracts import BUCKET_DEVICE_HEARTBEAT, BUCKET_DEVICE_INFO, BUCKET_DEVICE_STATE
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.kube.client import DEPLOYMENTS, KubeClient
from fleet.runtime.kube.decode import KubeObject
from fleet.runtime.kube.watch import ResourceWatcher
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.kvstore import KvStore
from fleet.runtime.nats.watch import Watch

logger = logging.getLogger(__name__)

Feed = Callable[[object], None]
BUCKETS = (BUCKET_DEVICE_INFO, BUCKET_DEVICE_HEARTBEAT, BUCKET_DEVICE_STATE)


def _decoding(bucket: str, feed: Feed) -> Callable[[tuple[KvEntry, ...]], None]:
    decode, coalesce = DECODERS[bucket], bucket in COALESCED
    skips = SkipLog(logger, what=f"entries of {bucket}", prefix=f"{bucket}/")

    def on_batch(entries: tuple[KvEntry, ...]) -> None:
        feed(decode(latest_per_key(entries) if coalesce else entries, skips))

    return on_batch


class Feeds:
    """:meth:`start` the watches (the buckets' on ``loop``, the Deployments' on a thread);
    :meth:`stop` them."""

    def __init__(self, *, feed: Feed, kv: KvStore, loop: EventLoopThread,
                 kube: KubeClient) -> None:  # fmt: skip
        self._loop = loop
        self._watches = [
            Watch(kv, bucket, name=f"dashboard-{bucket}", on_batch=_decoding(bucket, feed))
            for bucket in BUCKETS
        ]

        def listed(scope: str | None, objects: tuple[KubeObject, ...]) -> None:
            feed(m.DeploymentsListed(scope=scope, objects=objects))

        def event(kind: str, obj: KubeObject) -> None:
            feed(m.DeploymentEvent(type=kind, obj=obj))

        self._watcher = ResourceWatcher(
            client=kube, resource=DEPLOYMENTS, namespace=None, on_listed=listed, on_event=event
        )

    def start(self) -> None:
        async def started() -> None:
            for watch in self._watches:
                watch.start()

        self._loop.run(started(), timeout=30)
        self._watcher.start()

    def stop(self) -> None:
        self._watcher.stop(timeout=10.0)

        async def stopped() -> None:
            for watch in self._watches:
                await watch.stop()

        self._loop.run(stopped(), timeout=30)
