"""How many entries each bucket watch is behind its stream, sampled every few seconds.

Why it exists: when a fleet's statuses lag, the first question is whether the operator
reads the bus slower than devices write it. :class:`WatchLag` asks the stream's last
revision (one direct get per bucket, :meth:`KvStore.last_revision`) every ``interval``
seconds and hands ``stream's last revision - the watch's last delivered revision`` to
``publish`` (``/metrics``: ``fleet_operator_watch_lag_entries``). A watch that reads once
(desired-state: the operator writes it) is not sampled.

What it must never do: slow a watch (it only reads ``last_revision``), die of a failed
request (a sample is skipped; the next one comes), or run without a bound on its requests
(one per bucket per interval, each with the store's timeout).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from fleet.errors import FleetError
from fleet.runtime.aiokit.tasks import cancel_and_wait, create_guarded_task
from fleet.runtime.nats.kvstore import KvStore
from fleet.runtime.nats.watch import Watch

logger = logging.getLogger(__name__)


class WatchLag:
    def __init__(
        self,
        kv: KvStore,
        watches: Mapping[str, Watch],
        *,
        publish: Callable[[str, int], None],
        interval: float = 5.0,
    ) -> None:
        self._kv, self._watches, self._publish = kv, dict(watches), publish
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start on the running loop (call from a coroutine on the loop)."""
        self._task = create_guarded_task(self._run(), name="watch-lag")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def sample(self) -> dict[str, int]:
        """One sample of every watch: bucket -> entries behind (those that answered)."""
        out = {}
        for bucket, watch in self._watches.items():
            try:
                last = await self._kv.last_revision(bucket)
            except FleetError as exc:
                logger.debug("watch lag: %s not sampled: %s", bucket, exc)
                continue
            out[bucket] = max(0, last - watch.last_revision)
            self._publish(bucket, out[bucket])
        return out

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.sample()
