"""Fixtures of the security tests: a real nats-server in auth and TLS mode, and identities.

One server per module (``secure_fleet``): an :class:`~fleet.runtime.nats.identity.Authority`
(operator, system account, the fleet's account with a signing key), a throwaway CA and
a certificate for 127.0.0.1, the four buckets created by the operator's identity, and
credentials files for the operator, ``fleetctl``, the system user and two devices:
``dev-a`` and ``dev-a_b`` (B's id starts with A's, so that no prefix of a subject or a
name can stand for both). Every test talks to 127.0.0.1 only and waits for conditions,
each wait bounded.

:class:`Intruder` is a raw nats-py connection with someone's credentials: it may send
anything, and it records what the server refused (a permission violation comes back as
an asynchronous ``-ERR``; a refused request simply gets no reply).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
import uvloop
from nats.aio.client import Client
from nats.aio.msg import Msg

from fleet.contracts import DeviceId
from fleet.devtools.tls import LocalCa, make_local_ca
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.identity import Authority
from fleet.runtime.nats.permissions import (
    Permissions,
    device_permissions,
    fleetctl_permissions,
    operator_permissions,
)
from fleet.runtime.nats.server import LocalNatsServer
from tests.budgets import budget
from tests.fixtures.nats import create_buckets

DEVICE_A = DeviceId("dev-a")
DEVICE_B = DeviceId("dev-a_b")  # starts with A's id on purpose
REFUSED_WAIT = 1.0  # seconds a refused request waits for the reply that never comes


@dataclass
class SecureFleet:
    """One nats-server with auth and TLS, the authority it trusts, and credentials."""

    server: LocalNatsServer
    authority: Authority
    ca: LocalCa
    directory: Path
    creds: dict[str, Path] = field(default_factory=dict)
    _issued: int = 0

    def issue(self, permissions: Permissions, *, expires_in: float | None = 3600.0) -> Path:
        """A new user with ``permissions``; its ``.creds`` file."""
        self._issued += 1
        path = self.directory / f"{permissions.name}-{self._issued}.creds"
        return self.authority.issue(permissions, expires_in=expires_in).write(path)

    def bus(
        self,
        creds: Path,
        permissions: Permissions,
        *,
        name: str,
        create_buckets: bool = False,
        request_timeout: float = 2.0,
    ) -> Bus:
        """A fleet Bus (nats-py) with these credentials, TLS, and the identity's inboxes
        (a refused request is a timeout: ``request_timeout`` bounds each)."""
        return Bus(
            urls=[self.server.url], name=name, credentials=creds, tls_ca=self.ca.ca_cert,
            inbox_prefix=permissions.inbox_prefix, create_buckets=create_buckets,
            request_timeout=request_timeout,
        )  # fmt: skip


@pytest.fixture(scope="module")
def secure_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureFleet]:
    directory = tmp_path_factory.mktemp("secure")
    authority = Authority.create()
    ca = make_local_ca(directory / "ca")
    server = LocalNatsServer(
        store_dir=directory / "jetstream", auth=authority.server_auth(), tls=ca.server
    )
    server.start()
    try:
        yield _set_up(SecureFleet(server=server, authority=authority, ca=ca, directory=directory))
    finally:
        server.stop()


def _set_up(fleet: SecureFleet) -> SecureFleet:
    """Credentials for everyone, and the buckets, created by the operator's identity."""
    fleet.creds["operator"] = fleet.issue(operator_permissions())
    fleet.creds["fleetctl"] = fleet.issue(fleetctl_permissions())
    fleet.creds[DEVICE_A] = fleet.issue(device_permissions(DEVICE_A))
    fleet.creds[DEVICE_B] = fleet.issue(device_permissions(DEVICE_B))
    system = fleet.authority.issue_system_user(name="system", expires_in=3600.0)
    fleet.creds["system"] = system.write(fleet.directory / "system.creds")
    operator = fleet.bus(
        fleet.creds["operator"], operator_permissions(), name="operator", create_buckets=True
    )

    loop = EventLoopThread(name="secure-setup", loop_factory=uvloop.new_event_loop)
    loop.start()
    try:
        loop.run(create_buckets(operator), timeout=30)
    finally:
        loop.stop()
    return fleet


@pytest.fixture
def operator_bus(secure_fleet: SecureFleet, event_loop_thread: EventLoopThread) -> Iterator[Bus]:
    """The operator's identity, connected."""
    yield from _connected(
        event_loop_thread,
        secure_fleet.bus(
            secure_fleet.creds["operator"], operator_permissions(), name="operator",
            create_buckets=True,
        ),
    )  # fmt: skip


@pytest.fixture
def device_a_bus(secure_fleet: SecureFleet, event_loop_thread: EventLoopThread) -> Iterator[Bus]:
    """Device A's own identity on a fleet Bus, as its agent would connect."""
    yield from _connected(
        event_loop_thread,
        secure_fleet.bus(secure_fleet.creds[DEVICE_A], device_permissions(DEVICE_A), name=DEVICE_A),
    )


def _connected(loop: EventLoopThread, bus: Bus) -> Iterator[Bus]:
    async def up() -> None:
        await bus.start()
        await bus.wait_connected(timeout=10)

    loop.run(up(), timeout=15)
    try:
        yield bus
    finally:
        loop.run(bus.close(), timeout=10)


class Intruder:
    """A raw nats-py connection that sends anything, and what the server refused."""

    def __init__(self, client: Client, refusals: list[str]) -> None:
        self.client = client
        self.refusals = refusals

    @classmethod
    async def connect(
        cls, fleet: SecureFleet, creds: Path | None, *, inbox_prefix: str = "_INBOX"
    ) -> Intruder:
        """Connect (no reconnects: a refusal is final); raises if the server refuses."""
        refusals: list[str] = []

        async def on_error(exc: Exception) -> None:
            refusals.append(str(exc).lower())

        client = Client()
        try:
            await client.connect(
                fleet.server.url,
                user_credentials=None if creds is None else str(creds),
                tls=ssl.create_default_context(cafile=str(fleet.ca.ca_cert)),
                inbox_prefix=inbox_prefix,
                error_cb=on_error,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=2,
            )
        except BaseException:
            # A refused connect can leave its TLS transport open (nats-py keeps it on the
            # client): closed here, or the test's event loop cannot close (EBUSY).
            with contextlib.suppress(Exception):
                await client.close()
            raise
        return cls(client, refusals)

    async def close(self) -> None:
        if not self.client.is_closed:
            await self.client.close()

    async def request(
        self, subject: str, payload: bytes = b"", *, headers: dict[str, str] | None = None
    ) -> Msg | None:
        """The reply, or None when none came within :data:`REFUSED_WAIT`."""
        try:
            return await self.client.request(
                subject, payload, timeout=REFUSED_WAIT, headers=headers
            )
        except nats.errors.TimeoutError:
            return None

    async def refused(self, what: str, subject: str, *, timeout: float = 15.0) -> None:
        """Wait until the server refused ``what`` (``publish``/``subscription``) to ``subject``
        (the refusal comes back asynchronously: under a loaded suite it took over 5 s)."""
        wanted = f'permissions violation for {what} to "{subject.lower()}"'
        try:
            await wait_until(
                lambda: any(wanted in r for r in self.refusals),
                timeout=budget(timeout),
                what=f"the server to refuse {what} to {subject}",
            )
        except AssertionError as exc:  # what did come back, to tell a lost -ERR from another
            raise AssertionError(f"{exc}; refusals seen: {self.refusals!r}") from None

    async def collect(self, subject: str) -> list[Msg]:
        """Subscribe ``subject``; the list fills with whatever arrives."""
        got: list[Msg] = []

        async def keep(msg: Msg) -> None:
            got.append(msg)

        await self.client.subscribe(subject, cb=keep)
        return got


async def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, step: float = 0.02
) -> None:
    """Return once ``check()`` holds; fail the test naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(step)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float, what: str, step: float = 0.05
) -> None:
    """:func:`wait_until` for a check that talks to the server."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(step)


@pytest.fixture
def intruder_a(secure_fleet: SecureFleet, event_loop_thread: EventLoopThread) -> Iterator[Intruder]:
    """Device A's credentials in a connection that tries everything."""
    intruder = event_loop_thread.run(
        Intruder.connect(
            secure_fleet, secure_fleet.creds[DEVICE_A],
            inbox_prefix=device_permissions(DEVICE_A).inbox_prefix,
        ),
        timeout=10,
    )  # fmt: skip
    try:
        yield intruder
    finally:
        event_loop_thread.run(intruder.close(), timeout=10)
