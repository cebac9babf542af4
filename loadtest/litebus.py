"""The lean client as fleet's transport (``LeanTransport``) and as a bus (``LiteBus``).

Why it exists: a swarm process runs thousands of simulated devices on one loop, and
nats-py's per-request CPU cost bounded how fast they react (see
:mod:`loadtest.natsproto`). ``LeanTransport`` implements
:class:`fleet.runtime.nats.transport.Transport` on :class:`loadtest.natsproto.NatsClient`
explicitly (a subclass of the port, so mypy checks every method against it), turning
the client's errors into fleet's: ``BusUnavailable`` for no responders, a timeout or a
lost connection, ``BusError`` for what the client refuses (a bad subject, a payload over
the server's limit). ``LiteBus`` is a :class:`~fleet.runtime.nats.bus.Bus` on it: the
same KV operations, reads and the agent's desired feed, the same requests on the wire.

Differences from a bus on nats-py, on purpose: it never reconnects (the listener it
accepts never fires; once the connection is gone ``wait_connected`` raises
``BusUnavailable`` at once and every call fails the same way), and it never creates a
bucket: ``ensure_buckets`` only checks they exist (the run's control plane creates them
with a nats-py bus).

What it must never do: create or change streams, or be used by anything but the swarm.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fleet.errors import BusError, BusUnavailable, FleetError
from fleet.runtime.aiokit.tasks import cancel_and_wait
from fleet.runtime.nats.buckets import BucketSettings
from fleet.runtime.nats.bus import Bus, Connection
from fleet.runtime.nats.transport import Message, MessageHandler, Subscription
from loadtest.natsauth import LeanCredentials
from loadtest.natsproto import ConnectionClosed, NatsClient, NatsError, NoResponders, RequestTimeout


def _translated(exc: Exception, *, what: str) -> FleetError:
    """fleet's error for one of the lean client's (or its ``ValueError`` on a bad subject)."""
    if isinstance(exc, NoResponders):
        return BusUnavailable(f"no responders on {what} (missing stream?)")
    if isinstance(exc, (ConnectionClosed, RequestTimeout)):
        return BusUnavailable(str(exc))
    return BusError(f"{what}: {exc}")


class LeanTransport(Connection):
    """fleet's transport port on one lean connection (one connect attempt, no reconnect)."""

    def __init__(self, client: NatsClient, *, name: str) -> None:
        self.client = client
        self._name = name
        self._connector: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting (one attempt, in the background); return at once."""
        if self._connector is None:
            self._connector = asyncio.get_running_loop().create_task(
                self.client.connect(), name=f"litebus-connect-{self._name}"
            )

    async def close(self) -> None:
        if self._connector is not None and not self._connector.done():
            await cancel_and_wait(self._connector)
        await self.client.close()

    # -- connection state ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.client.is_connected

    async def wait_connected(self, *, timeout: float | None) -> None:
        """Wait for the connection; ``BusUnavailable`` if it failed, ended or took too long."""
        if self._connector is None:
            raise BusUnavailable(f"LiteBus {self._name}: start() was not called")
        try:
            await asyncio.wait_for(asyncio.shield(self._connector), timeout)
        except TimeoutError as exc:
            raise BusUnavailable(
                f"NATS at {self.client.url} not reachable within {timeout}s"
            ) from exc
        except NatsError as exc:
            raise BusUnavailable(str(exc)) from exc
        if self.client.is_closed:
            raise BusUnavailable(
                f"connection to NATS at {self.client.url} is gone and LiteBus does not"
                f" reconnect ({self.client.last_error!r})"
            )

    def add_reconnect_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Accepted as the port asks; never called (this connection does not reconnect)."""
        del listener
        return lambda: None

    # -- messaging ----------------------------------------------------------------------

    def new_inbox(self) -> str:
        return self.client.new_inbox()

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        reply: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        try:
            self.client.publish(subject, payload, reply=reply or None, headers=headers)
        except (NatsError, ValueError) as exc:
            raise _translated(exc, what=f"publish to {subject}") from exc

    async def subscribe(self, subject: str, handler: MessageHandler) -> Subscription:
        try:
            return await self.client.subscribe(subject, cb=handler)
        except (NatsError, ValueError) as exc:
            raise _translated(exc, what=f"subscribe to {subject}") from exc

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float,
    ) -> Message:
        try:
            return await self.client.request(subject, payload, timeout=timeout, headers=headers)
        except (NatsError, ValueError) as exc:
            raise _translated(exc, what=subject) from exc

    async def flush(self, *, timeout: float) -> None:
        try:
            await self.client.flush(timeout=timeout)
        except (NatsError, ValueError) as exc:
            raise _translated(exc, what="flush") from exc


class LiteBus(Bus):
    """A :class:`~fleet.runtime.nats.bus.Bus` on one lean connection to ``urls[0]``."""

    def __init__(
        self,
        *,
        urls: Sequence[str],
        name: str,
        request_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        credentials: Path | LeanCredentials | None = None,
        tls_ca: Path | None = None,
        inbox_prefix: str = "_INBOX",
    ) -> None:
        """``credentials`` (a ``.creds`` file, or read already), ``tls_ca`` and ``inbox_prefix``: as
        :class:`~fleet.runtime.nats.bus.Bus` takes them (docs/security.md)."""
        if not urls:
            raise ValueError("LiteBus needs a NATS url")
        # loopback, one server: no cluster, no failover
        self.client = NatsClient(
            url=urls[0], name=name, connect_timeout=connect_timeout,
            credentials=(
                LeanCredentials.read(credentials) if isinstance(credentials, Path) else credentials
            ),
            tls_ca=tls_ca, inbox_prefix=inbox_prefix,
        )  # fmt: skip
        super().__init__(
            name=name,
            request_timeout=request_timeout,
            connection=LeanTransport(self.client, name=name),
            create_buckets=False,
        )

    async def ensure_buckets(
        self,
        *,
        enforce_limits: bool = False,
        settings: BucketSettings | None = None,
        update: bool = False,
    ) -> dict[str, list[str]]:
        """Check the four buckets exist (LiteBus never creates them: a nats-py bus does)."""
        del enforce_limits, settings, update
        try:
            await self.kv.check_buckets()
        except BusUnavailable:
            raise
        except BusError as exc:
            raise BusError(
                f"{exc}: not usable; create the buckets with Bus.ensure_buckets"
            ) from exc
        return {}
