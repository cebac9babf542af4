"""One nats-py connection and the JetStream KV operations fleet needs.

Why it exists: every process (agent, operator, load swarm) talks to NATS through one
:class:`Bus` hosted on its :class:`~fleet.runtime.aiokit.loop.EventLoopThread`. The bus hides
nats-py's error zoo behind fleet's own errors (``BusUnavailable`` to retry later,
``RevisionMismatch`` for a lost compare-and-swap, ``BusError`` for the rest), keeps
connecting in the background when the server is away at start (an agent boots without
network), and restarts its watches after every reconnect.

What it must never do: be called from a thread other than its loop's (submit the
coroutines through the loop), or block in a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
)
from fleet.contracts.limits import BUCKET_VALUE_LIMITS
from fleet.errors import BusUnavailable, KeyExists
from fleet.runtime.aiokit.tasks import create_guarded_task
from fleet.runtime.nats.errors import UNAVAILABLE, translate_errors
from fleet.runtime.nats.kv import KvEntry, last_revision_of, last_revision_request
from fleet.runtime.nats.watch import Watch, read_snapshot

logger = logging.getLogger(__name__)

#: Every bucket keeps one value per key (history 1) and no TTL; see docs/runtime.md.
BUCKETS: tuple[str, ...] = (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    BUCKET_DEVICE_HEARTBEAT,
)

#: Room for the headers a put may carry (nats-server counts them in a message's size).
HEADER_ROOM = 512


def max_value_size(bucket: str) -> int:
    """The bucket's server-side maximum message size: the wire bound of its values
    (:data:`fleet.contracts.limits.BUCKET_VALUE_LIMITS`) plus room for headers."""
    return BUCKET_VALUE_LIMITS[bucket] + HEADER_ROOM


class Bus:
    """The process's one NATS connection, with KV helpers and restartable watches."""

    def __init__(
        self,
        *,
        urls: Sequence[str],
        name: str,
        on_connection: Callable[[bool], None] | None = None,
        request_timeout: float = 5.0,
    ) -> None:
        if not urls:
            raise ValueError("Bus needs at least one NATS url")
        self._urls = list(urls)
        self._name = name
        self._on_connection = on_connection
        self._timeout = request_timeout
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: dict[str, KeyValue] = {}
        self._connected = asyncio.Event()
        self._closing = False
        self._connector: asyncio.Task[None] | None = None
        self._reconnect_listeners: list[Callable[[], None]] = []

    # -- connection ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def nc(self) -> Client:
        """The nats-py client, for other ``fleet.runtime`` modules only."""
        if self._nc is None:
            raise BusUnavailable(f"NATS at {self._urls} is not connected yet")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise BusUnavailable(f"NATS at {self._urls} is not connected yet")
        return self._js

    @property
    def request_timeout(self) -> float:
        return self._timeout

    async def start(self) -> None:
        """Start connecting in the background (retrying forever); return at once."""
        if self._connector is None:
            self._connector = create_guarded_task(
                self._connect_forever(), name=f"bus-connect-{self._name}", finishable=True
            )

    async def wait_connected(self, *, timeout: float | None) -> None:
        """Wait until connected; ``timeout=None`` waits as long as it takes."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError as exc:
            raise BusUnavailable(f"NATS at {self._urls} not reachable within {timeout}s") from exc

    async def _connect_forever(self) -> None:
        delay = 0.1
        while not self._closing:
            nc = Client()
            try:
                await nc.connect(
                    servers=self._urls,
                    name=self._name,
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,  # type: ignore[arg-type]  # typed int, used as sleep()
                    ping_interval=5,
                    max_outstanding_pings=2,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    error_cb=self._error,
                )
            except (nats.errors.NoServersError, *UNAVAILABLE) as exc:
                logger.info(
                    "NATS at %s not reachable (%s); retrying in %.1fs", self._urls, exc, delay
                )
                with contextlib.suppress(Exception):
                    await nc.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._nc = nc
            self._js = nc.jetstream(timeout=self._timeout)
            logger.info("connected to NATS at %s as %s", nc.connected_url, self._name)
            self._set_connected(True)
            return

    def _set_connected(self, up: bool) -> None:
        if up:
            self._connected.set()
        else:
            self._connected.clear()
        if self._on_connection is not None:
            try:
                self._on_connection(up)
            except Exception:
                logger.exception("on_connection callback failed")

    async def _disconnected(self) -> None:
        if not self._closing:
            logger.warning("disconnected from NATS")
        self._set_connected(False)

    async def _reconnected(self) -> None:
        logger.info("reconnected to NATS at %s", self.nc.connected_url)
        self._set_connected(True)
        for listener in list(self._reconnect_listeners):
            listener()

    async def _error(self, exc: Exception) -> None:
        logger.debug("NATS client error: %r", exc)

    def add_reconnect_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` (on the loop) after every reconnect; returns a remover."""
        self._reconnect_listeners.append(listener)
        return lambda: self._reconnect_listeners.remove(listener)

    async def close(self) -> None:
        self._closing = True
        if self._connector is not None and not self._connector.done():
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._connected.clear()

    # -- buckets ------------------------------------------------------------------

    async def ensure_buckets(self, *, enforce_limits: bool = False) -> None:
        """Create the four buckets if missing (idempotent, safe to race).

        A bucket is created with its server-side maximum value size
        (:func:`max_value_size`). ``enforce_limits`` (the operator, which owns the
        buckets) also sets it on buckets made by an older release that had none.
        """
        for bucket in BUCKETS:
            await self._bucket(bucket)
            if enforce_limits:
                await self._enforce_limit(bucket)

    async def _bucket(self, bucket: str) -> KeyValue:
        kv = self._kv.get(bucket)
        if kv is not None:
            return kv
        async with translate_errors(f"opening bucket {bucket!r}"):
            try:
                kv = await self.js.key_value(bucket)
            except nats.js.errors.BucketNotFoundError:
                try:
                    kv = await self.js.create_key_value(
                        bucket=bucket,
                        history=1,
                        direct=True,
                        max_value_size=max_value_size(bucket),
                    )
                except nats.js.errors.BadRequestError:
                    kv = await self.js.key_value(bucket)  # created by a racing process
        self._kv[bucket] = kv
        return kv

    async def _enforce_limit(self, bucket: str) -> None:
        stream = f"KV_{bucket}"
        want = max_value_size(bucket)
        async with translate_errors(f"checking the limits of bucket {bucket!r}"):
            info = await self.js.stream_info(stream)
            have = info.config.max_msg_size
            if have is not None and 0 < have <= want:
                return
            logger.warning(
                "bucket %s accepts values of %s; setting its maximum value size to %d bytes",
                bucket,
                "any size" if have in (None, -1) else f"up to {have} bytes",
                want,
            )
            await self.js.update_stream(info.config.evolve(max_msg_size=want))

    # -- KV operations --------------------------------------------------------------

    async def put(self, bucket: str, key: str, value: bytes) -> int:
        """Write ``value``; return the new revision."""
        kv = await self._bucket(bucket)
        async with translate_errors(f"put {bucket}/{key}"):
            return int(await kv.put(key, value))

    async def create(self, bucket: str, key: str, value: bytes) -> int:
        """Write ``value`` only if ``key`` holds none; raise ``KeyExists`` otherwise."""
        kv = await self._bucket(bucket)
        async with translate_errors(f"create {bucket}/{key}"):
            try:
                return int(await kv.create(key, value))
            except nats.js.errors.KeyWrongLastSequenceError as exc:
                raise KeyExists(f"{bucket}/{key} already exists") from exc

    async def update(self, bucket: str, key: str, value: bytes, *, last: int) -> int:
        """Compare-and-swap: write only if the key's revision is still ``last``."""
        kv = await self._bucket(bucket)
        async with translate_errors(f"update {bucket}/{key} at revision {last}"):
            return int(await kv.update(key, value, last=last))

    async def get(self, bucket: str, key: str) -> KvEntry | None:
        """The key's live entry, or None when it is absent or deleted."""
        kv = await self._bucket(bucket)
        async with translate_errors(f"get {bucket}/{key}"):
            try:
                entry = await kv.get(key)
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                return None
        return KvEntry(
            bucket=bucket, key=key, value=entry.value or b"", revision=int(entry.revision or 0)
        )

    async def delete(self, bucket: str, key: str, *, last: int | None = None) -> None:
        """Delete ``key`` (a delete marker; watchers see it). ``last`` makes it a CAS."""
        kv = await self._bucket(bucket)
        async with translate_errors(f"delete {bucket}/{key}"):
            await kv.delete(key, last=last)

    async def last_revision(self, bucket: str, key_filter: str = ">") -> int:
        """The highest revision among keys matching ``key_filter`` (0 when none).

        Uses the stream's last-by-subject lookup, which accepts wildcards; this is the
        mark an initial read must reach before it may call itself complete.
        """
        await self._bucket(bucket)
        what = f"last revision of {bucket}/{key_filter}"
        subject, payload = last_revision_request(bucket, key_filter)
        async with translate_errors(what):
            reply = await self.nc.request(subject, payload, timeout=self._timeout)
        return last_revision_of(reply.headers, what=what)

    async def snapshot(
        self, bucket: str, key_filter: str = ">", *, timeout: float = 60.0
    ) -> dict[str, KvEntry]:
        """Every live entry matching ``key_filter``, complete as of the call."""
        return await read_snapshot(self, bucket, key_filter, timeout=timeout)

    def watch(
        self,
        bucket: str,
        key_filter: str,
        *,
        name: str,
        on_entry: Callable[[KvEntry], None],
        on_synced: Callable[[], None] | None = None,
    ) -> Watch:
        """Start a :class:`~fleet.runtime.nats.watch.Watch` (call on the loop)."""
        watch = Watch(self, bucket, key_filter, name=name, on_entry=on_entry, on_synced=on_synced)
        watch.start()
        return watch
