"""One device's desired-state feed: exact initial entries, then every change, no consumer kept.

Why it exists: a fleet has up to 100,000 devices on one NATS cluster. A ``kv.watch``
per device is an ordered consumer per device on the server (measured: 5,000 of them
cost 344 MB of server RSS and idle CPU), while a core subscription costs almost nothing.
So a device follows its keys with one core subscription on
``$KV.desired-state.<device>.*`` and reads revisions with direct gets; the only consumer
it ever makes is the millisecond-lived one of an initial read
(:func:`fleet.runtime.nats.read.read_bucket`, named ``feed_<device>_<hex>``; see
docs/agent.md). It speaks through the transport port of the store it is given, so the
load swarm's simulated devices follow their keys with this very code.

How no update is lost (the argument, in order):

1. The core subscription is made (and flushed to the server) *before* the snapshot is
   read. A write that lands after the flush is seen by the subscription; a write that
   landed before it is in the stream before the snapshot's mark (the stream's last
   matching revision when the snapshot starts), so the snapshot has it.
2. Live messages that arrive during the snapshot are buffered, then resolved after it.
3. A core message carries no revision, so each one is *resolved*: a direct get of the
   key's last message (``$JS.API.DIRECT.GET.KV_desired-state.$KV.desired-state.<dev>.<dep>``)
   returns value, revision and operation. Each key's highest delivered revision is
   remembered; anything at or below it is dropped. Two quick writes may both resolve to
   the newer one: the feed delivers the latest value, once, which is what a reconciler
   needs (history is 1 anyway).
   A core message can arrive *before* the stream has stored the write: nats-server fans
   a publish out to core subscribers at once and stores it on the stream's own
   goroutine (seen under load: the get answered 404 for a key whose message had just
   arrived, and the entry was never applied). So a live message whose get shows nothing
   newer than what was delivered is read again after short, growing delays
   (``SETTLE_DELAYS``, about 4 s in all) until it does. A write the stream rejected (a
   lost compare-and-swap) also sends a core message; its reads end there, quietly. One
   reader runs per key; a message arriving meanwhile makes it read once more.
4. Keys known from before (the persisted desired state, or delivered earlier) but
   absent from a snapshot are resolved one by one: a delete marker or no message at
   all is a deletion; a put (a write that raced the snapshot) is delivered as such.
5. Core messages are dropped while disconnected, so every reconnect buffers and takes
   a new snapshot (steps 1-4). A periodic snapshot (``resync_interval``, jittered by
   +-25% so that devices that connected together do not snapshot together) bounds what
   a dropped message (slow consumer) could cost. A re-read first asks for the highest
   revision among the device's keys (one direct get); if it is the highest the feed has
   seen, nothing was written since (every put, delete and KV purge writes a newer
   revision) and the snapshot, with its consumer, is skipped. At 100,000 devices the
   consumers of re-reads that all came at once (a resync, a reconnect) hit the
   server's consumer limit and the feeds' retries saturated it. What the check cannot
   see: a key removed without a marker (a stream-level purge, not a KV operation), or a
   store reset whose new revisions happen to reach exactly the old highest one; the
   next write to one of the device's keys catches both up.

What it must never do: block the loop (callbacks only ``tell`` actors), leave a
consumer behind, or deliver a revision lower than one it delivered for the same key.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping

from fleet.contracts import BUCKET_DESIRED_STATE, DeviceId, desired_state_key_filter
from fleet.errors import FleetError
from fleet.runtime.aiokit.tasks import cancel_and_wait, create_guarded_task
from fleet.runtime.nats import subjects
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.kvstore import KvStore
from fleet.runtime.nats.read import device_read, read_bucket
from fleet.runtime.nats.transport import MalformedReply, Message, Subscription

logger = logging.getLogger(__name__)

_PREFIX = subjects.kv_prefix(BUCKET_DESIRED_STATE)

#: Seconds an initial read may take before it counts as failed (and is retried).
READ_TIMEOUT = 30.0

#: A periodic snapshot comes after ``resync_interval`` times a factor drawn from this range.
RESYNC_JITTER: tuple[float, float] = (0.75, 1.25)


def resync_delay(interval: float) -> float:
    """The wait before the next periodic snapshot: ``interval``, jittered.

    Devices that (re)connected together (a fleet booted at once, or back after a
    nats-server restart) would otherwise snapshot together every ``interval``, each
    snapshot a consumer on the desired-state stream: 100,000 simulated devices started
    within 100 s hit the server's consumer limit at their first resync.
    """
    return interval * random.uniform(*RESYNC_JITTER)  # spreading load, not secrecy


#: Seconds between re-reads of a key whose live message the stream had not stored yet.
SETTLE_DELAYS: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 0.6, 1.0, 2.0)


class DesiredFeed:
    """Delivers ``device_id``'s desired-state entries (puts and deletes) to ``on_entry``."""

    def __init__(
        self,
        *,
        device_id: DeviceId,
        on_entry: Callable[[KvEntry], None],
        kv: KvStore,
        on_synced: Callable[[], None] | None = None,
        known: Mapping[str, int] | None = None,
        resync_interval: float = 300.0,
        on_reread: Callable[[], None] | None = None,
    ) -> None:
        self._kv = kv
        self._transport = kv.transport
        self._device = device_id
        self._filter = desired_state_key_filter(device_id)
        self._read = device_read(device_id)
        self._on_entry = on_entry
        self._on_synced = on_synced
        self._on_reread = on_reread  # each read after the first (periodic, reconnect)
        self._revs: dict[str, int] = dict(known or {})  # key -> highest revision seen
        self._live: set[str] = set(self._revs)  # keys that hold a value
        self._resync_interval = resync_interval
        self._resync = asyncio.Event()
        self._buffer: list[str] | None = []  # keys seen live during a snapshot
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._reading: dict[str, bool] = {}  # key -> a live message came during its read
        self._remove_listener: Callable[[], None] | None = None
        self.snapshots = 0  # how many snapshots were read (tests, metrics)
        self.unchanged = 0  # how many re-reads found nothing newer and were skipped

    def start(self) -> None:
        """Start on the running loop (call from a coroutine on the loop)."""
        self._remove_listener = self._transport.add_reconnect_listener(self._on_reconnect)
        self._task = create_guarded_task(self._run(), name=f"desired-feed-{self._device}")

    async def stop(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        # cancelled until each ends (a stop just as the first read began, under load,
        # once lost its cancellation; nats-py's _flush_pending also catches it)
        await cancel_and_wait(self._task, *self._pending)
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    def _on_reconnect(self) -> None:
        if self._buffer is None:
            self._buffer = []
        self._resync.set()

    async def _run(self) -> None:
        delay = 0.2
        first = True
        while True:
            await self._transport.wait_connected(timeout=None)
            self._resync.clear()
            if self._buffer is None:
                self._buffer = []
            try:
                await self._subscribe()
                await self._snapshot()
            except Exception as exc:  # logged and retried: the feed must not die
                logger.info(
                    "desired feed %s: snapshot failed (%r); retry in %.1fs",
                    self._device,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            buffered, self._buffer = self._buffer or [], None
            for key in dict.fromkeys(buffered):
                self._follow(key)
            if first:
                first = False
                if self._on_synced is not None:
                    self._on_synced()
            elif self._on_reread is not None:
                self._on_reread()
            await self._until_resync()
            if self._buffer is None:
                self._buffer = []

    async def _until_resync(self) -> None:
        """Wait for a reconnect (or a failed read), or for the next periodic re-read.

        A periodic re-read is put off while live reads are in flight: the feed is then
        behind the stream, not missing anything, and the re-read would only find those
        same writes, with a consumer (seen when 100,000 simulated devices shared two
        cores and took minutes to resolve one rollout's entries).
        """
        while True:
            try:
                await asyncio.wait_for(self._resync.wait(), resync_delay(self._resync_interval))
            except TimeoutError:
                if self._reading:
                    continue
            return

    async def _subscribe(self) -> None:
        if self._sub is None:
            self._sub = await self._transport.subscribe(
                subjects.kv_filter(BUCKET_DESIRED_STATE, self._filter), self._on_message
            )
        await self._transport.flush(timeout=max(1, round(self._kv.timeout)))

    async def _snapshot(self) -> None:
        seen = max(self._revs.values(), default=0)
        mark = await self._kv.last_revision(BUCKET_DESIRED_STATE, self._filter)
        if seen and mark == seen:
            # Nothing was written to this device's keys since the last revision it saw
            # (a put, a delete or a purge each writes a newer one): the read would bring
            # nothing new. One direct get instead of a consumer (step 5).
            self.unchanged += 1
            return
        entries, _ = await read_bucket(
            self._kv, BUCKET_DESIRED_STATE, self._filter, mark=mark, spec=self._read,
            timeout=READ_TIMEOUT,
        )  # fmt: skip
        self.snapshots += 1
        for entry in sorted(entries.values(), key=lambda e: e.revision):
            # A snapshot is the truth: a revision *below* the one seen means the store
            # was reset (revisions restarted), not that the entry is stale.
            if entry.revision != self._revs.get(entry.key) or entry.key not in self._live:
                self._revs.pop(entry.key, None)
                self._deliver(entry)
        for key in [k for k in self._live if k not in entries]:
            await self._resolve(key)

    def _on_message(self, msg: Message) -> None:
        try:
            key = subjects.key_of(_PREFIX, msg.subject)
        except MalformedReply:
            return  # not a key of this bucket: nothing to follow
        if self._buffer is not None:
            self._buffer.append(key)
        else:
            self._follow(key)

    def _follow(self, key: str) -> None:
        """Read ``key`` until the write its live message announced shows (one reader a key)."""
        if key in self._reading:
            self._reading[key] = True  # the running reader reads once more
            return
        self._reading[key] = False
        task = create_guarded_task(
            self._read_live(key), name=f"desired-feed-{self._device}-{key}", finishable=True
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _read_live(self, key: str) -> None:
        try:
            while True:
                await self._settle(key)
                if not self._reading.get(key):
                    return
                self._reading[key] = False
        except (TimeoutError, FleetError, OSError) as exc:
            # The next snapshot (after the reconnect this usually means) catches it up.
            logger.info("desired feed %s: could not resolve %s (%r)", self._device, key, exc)
            self._resync.set()
        finally:
            self._reading.pop(key, None)

    async def _settle(self, key: str) -> None:
        """Resolve ``key`` until the stream shows something newer (bounded; see step 3)."""
        if await self._resolve(key):
            return
        for delay in SETTLE_DELAYS:
            await asyncio.sleep(delay)
            if await self._resolve(key):
                return
        logger.debug(
            "desired feed %s: nothing newer stored for %s (rejected write?)", self._device, key
        )

    async def _resolve(self, key: str) -> bool:
        """Read the key's last message and deliver it; False if it shows nothing newer."""
        entry = await self._kv.last_entry(BUCKET_DESIRED_STATE, key)
        if entry is None:  # purged, never written, or not stored yet
            if key in self._live:
                self._live.discard(key)
                self._call(
                    KvEntry(
                        bucket=BUCKET_DESIRED_STATE,
                        key=key,
                        value=b"",
                        revision=self._revs.get(key, 0),
                        operation="PURGE",
                    )
                )
                return True
            return False
        return self._deliver(entry)

    def _deliver(self, entry: KvEntry) -> bool:
        """Deliver ``entry`` unless seen; True if its revision is newer than the key's last."""
        if entry.revision <= self._revs.get(entry.key, 0):
            return False  # seen already (a re-read, two writes resolved to one, not stored yet)
        self._revs[entry.key] = entry.revision
        if entry.deleted:
            if entry.key not in self._live:
                return True  # a delete of something this device does not have
            self._live.discard(entry.key)
        else:
            self._live.add(entry.key)
        self._call(entry)
        return True

    def _call(self, entry: KvEntry) -> None:
        try:
            self._on_entry(entry)
        except Exception:
            logger.exception("desired feed %s: on_entry failed for %s", self._device, entry.key)
