"""The process's NATS bus: one connection, and the KV operations, reads and watches on it.

Why it exists: every process (agent, operator, fleetctl, load swarm) talks to NATS
through one :class:`Bus` hosted on its :class:`~fleet.runtime.aiokit.loop.EventLoopThread`.
A bus owns a connection (nats-py's, :mod:`fleet.runtime.nats.natspy`, unless it is given
another one such as the load swarm's lean client) and offers, on its transport port,
what the actors and tools need: the KV operations (:class:`~fleet.runtime.nats.kvstore.KvStore`,
also reachable as :attr:`Bus.kv` for the runtime's own pieces), a read
(:meth:`Bus.snapshot`) and watches (:meth:`Bus.watch`). Its errors are fleet's:
``BusUnavailable`` to retry later, ``RevisionMismatch`` for a lost compare-and-swap,
``KeyExists``, ``BusError`` for the rest.

What it must never do: be called from a thread other than its loop's (submit the
coroutines through the loop), or block in a callback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from fleet.errors import BusError
from fleet.runtime.fencing import WriteFence
from fleet.runtime.nats.buckets import BUCKETS, HEADER_ROOM, BucketSettings, max_value_size
from fleet.runtime.nats.fenced import FencedTransport
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.kvstore import KvStore
from fleet.runtime.nats.natspy import NatsPyClient, NatsPyJetStream, NatsPyTransport
from fleet.runtime.nats.read import read_bucket
from fleet.runtime.nats.transport import Transport
from fleet.runtime.nats.watch import Watch

__all__ = ["BUCKETS", "HEADER_ROOM", "Bus", "Connection", "max_value_size"]


class Connection(Transport, Protocol):
    """A transport whose lifetime its bus owns."""

    async def start(self) -> None:
        """Begin connecting (in the background); return at once."""
        ...

    async def close(self) -> None:
        """Close the connection; everything still waiting fails."""
        ...


class Bus:
    """The process's one NATS connection, with KV operations, reads and watches."""

    def __init__(
        self,
        *,
        urls: Sequence[str] = (),
        name: str,
        on_connection: Callable[[bool], None] | None = None,
        request_timeout: float = 5.0,
        connection: Connection | None = None,
        create_buckets: bool = True,
        credentials: Path | None = None,
        tls_ca: Path | None = None,
        inbox_prefix: str = "_INBOX",
        fence: WriteFence | None = None,
    ) -> None:
        """A bus on nats-py connecting to ``urls``, or on ``connection`` if given.

        ``create_buckets``: a missing bucket is created on first use (the agents', the
        operator's); without, the buckets must exist (the load swarm's devices, and any
        device with credentials, which may not look at streams: docs/security.md).
        ``credentials``, ``tls_ca``, ``inbox_prefix``: the user's ``.creds`` file, the CA
        of the server's certificate, and the inbox prefix its permissions allow
        (:class:`~fleet.runtime.nats.permissions.Permissions`); without, it connects as
        it always did. ``fence``: asked before every write to the buckets (leader
        election: :class:`~fleet.runtime.nats.fenced.FencedTransport`).
        """
        if connection is None:
            if not urls:
                raise ValueError("Bus needs at least one NATS url")
            connection = NatsPyTransport(
                urls=urls, name=name, on_connection=on_connection, credentials=credentials,
                tls_ca=tls_ca, inbox_prefix=inbox_prefix,
                buffer_while_away=fence is None,  # fenced: nothing sent late on a reconnect
            )  # fmt: skip
        self._name = name
        self._connection = connection
        self._transport: Transport = (
            connection if fence is None else FencedTransport(connection, fence)
        )
        self._timeout = request_timeout
        self.kv = KvStore(self._transport, timeout=request_timeout, create_buckets=create_buckets)
        self._js: NatsPyJetStream | None = None

    # -- connection -----------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def connected(self) -> bool:
        return self._connection.connected

    @property
    def request_timeout(self) -> float:
        return self._timeout

    async def start(self) -> None:
        """Start connecting in the background (retrying forever on nats-py); return at once."""
        await self._connection.start()

    async def wait_connected(self, *, timeout: float | None) -> None:
        """Wait until connected; ``timeout=None`` waits as long as it takes."""
        await self._connection.wait_connected(timeout=timeout)

    def add_reconnect_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` (on the loop) after every reconnect; returns a remover."""
        return self._connection.add_reconnect_listener(listener)

    async def close(self) -> None:
        await self._connection.close()

    async def reconnect(self) -> None:
        """Connect again now, with the credentials file as it is now (renewed credentials:
        :meth:`~fleet.runtime.nats.natspy.NatsPyTransport.reconnect`)."""
        await self._natspy().reconnect()

    @property
    def nc(self) -> NatsPyClient:
        """nats-py's own client, for tests that look at the server past fleet's KV code
        (the runtime speaks through :attr:`transport` only)."""
        return self._natspy().client

    @property
    def js(self) -> NatsPyJetStream:
        """nats-py's JetStream API, for tests that inspect or reconfigure streams."""
        if self._js is None:
            self._js = self._natspy().jetstream(timeout=self._timeout)
        return self._js

    def _natspy(self) -> NatsPyTransport:
        if not isinstance(self._connection, NatsPyTransport):
            raise BusError(f"bus {self._name} is not on a nats-py connection")
        return self._connection

    # -- buckets and KV operations ----------------------------------------------------

    async def ensure_buckets(
        self,
        *,
        enforce_limits: bool = False,
        settings: BucketSettings | None = None,
        update: bool = False,
    ) -> dict[str, list[str]]:
        """Create the four buckets if missing (idempotent, safe to race).

        A bucket is created with its server-side maximum value size
        (:func:`max_value_size`). ``enforce_limits`` (the operator, which owns the
        buckets) also sets it on buckets made by an older release that had none.
        ``settings`` (the operator's ``--bucket-*``): how missing buckets are made, and
        what existing ones are checked against (each bucket's differences are returned;
        with ``update`` they are changed to match).
        """
        return await self.kv.ensure_buckets(
            enforce_limits=enforce_limits, settings=settings, update=update
        )

    async def put(self, bucket: str, key: str, value: bytes) -> int:
        """Write ``value``; return the new revision."""
        return await self.kv.put(bucket, key, value)

    async def create(self, bucket: str, key: str, value: bytes) -> int:
        """Write ``value`` only if ``key`` holds none; raise ``KeyExists`` otherwise."""
        return await self.kv.create(bucket, key, value)

    async def update(self, bucket: str, key: str, value: bytes, *, last: int) -> int:
        """Compare-and-swap: write only if the key's revision is still ``last``."""
        return await self.kv.update(bucket, key, value, last=last)

    async def get(self, bucket: str, key: str) -> KvEntry | None:
        """The key's live entry, or None when it is absent or deleted."""
        return await self.kv.get(bucket, key)

    async def delete(self, bucket: str, key: str, *, last: int | None = None) -> int:
        """Delete ``key`` (a delete marker; watchers see it). ``last`` makes it a CAS."""
        return await self.kv.delete(bucket, key, last=last)

    async def last_revision(self, bucket: str, key_filter: str = ">") -> int:
        """The highest revision among keys matching ``key_filter`` (0 when none)."""
        return await self.kv.last_revision(bucket, key_filter)

    # -- reads and watches ------------------------------------------------------------

    async def snapshot(
        self, bucket: str, key_filter: str = ">", *, timeout: float = 60.0
    ) -> dict[str, KvEntry]:
        """Every live entry matching ``key_filter``, complete as of the call
        (:func:`~fleet.runtime.nats.read.read_bucket`)."""
        entries, _mark = await read_bucket(self.kv, bucket, key_filter, timeout=timeout)
        return entries

    def watch(
        self,
        bucket: str,
        key_filter: str = ">",
        *,
        name: str,
        on_entry: Callable[[KvEntry], None] | None = None,
        on_batch: Callable[[tuple[KvEntry, ...]], None] | None = None,
        on_synced: Callable[[], None] | None = None,
        follow: bool = True,
        batch_limit: int = 10_000,
    ) -> Watch:
        """Start a :class:`~fleet.runtime.nats.watch.Watch` (call on the loop); ``stop()`` it."""
        watch = Watch(
            self.kv, bucket, key_filter, name=name, on_entry=on_entry, on_batch=on_batch,
            on_synced=on_synced, follow=follow, batch_limit=batch_limit,
        )  # fmt: skip
        watch.start()
        return watch
