"""The lean client with device identity on: TLS, a user JWT with the signed nonce, its
own inboxes, and the server's permissions, exactly as nats-py's agents meet them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    desired_state_key,
    device_state_key,
)
from fleet.errors import BusError, BusUnavailable
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.desired_feed import DesiredFeed
from fleet.runtime.nats.identity import write_credentials
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.permissions import device_permissions
from loadtest.litebus import LiteBus
from loadtest.natsauth import LeanCredentials
from tests.security.conftest import (  # the security tests' server: auth and TLS
    DEVICE_A,
    DEVICE_B,
    SecureFleet,
    operator_bus,
    secure_fleet,
)

__all__ = ["operator_bus", "secure_fleet"]  # fixtures, imported to be used here

WEB = DeploymentName("web")


def lean_device(fleet: SecureFleet, creds: Path, *, inbox_prefix: str | None = None) -> LiteBus:
    return LiteBus(
        urls=[fleet.server.url], name=f"lean-{DEVICE_A}", credentials=creds,
        tls_ca=fleet.ca.ca_cert, request_timeout=2.0,
        inbox_prefix=inbox_prefix or device_permissions(DEVICE_A).inbox_prefix,
    )  # fmt: skip


@pytest.fixture
def lean_a(secure_fleet: SecureFleet, event_loop_thread: EventLoopThread) -> Iterator[LiteBus]:
    bus = lean_device(secure_fleet, secure_fleet.creds[DEVICE_A])

    async def up() -> None:
        await bus.start()
        await bus.wait_connected(timeout=10)

    event_loop_thread.run(up(), timeout=15)
    yield bus
    event_loop_thread.run(bus.close(), timeout=10)


def test_a_device_on_the_lean_client_follows_its_own_entries_and_writes_its_own_reports(
    lean_a: LiteBus, operator_bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    seen: list[KvEntry] = []
    synced = threading.Event()

    async def scenario() -> None:
        key = desired_state_key(DEVICE_A, WEB)
        await operator_bus.put(BUCKET_DESIRED_STATE, key, b"first")
        feed = DesiredFeed(kv=lean_a.kv, device_id=DEVICE_A, on_entry=seen.append,
                           on_synced=synced.set)  # fmt: skip
        feed.start()
        try:
            for _ in range(200):
                if synced.is_set():
                    break
                await asyncio.sleep(0.05)
            revision = await operator_bus.put(BUCKET_DESIRED_STATE, key, b"second")
            for _ in range(200):
                if any(e.revision == revision for e in seen):
                    break
                await asyncio.sleep(0.05)
        finally:
            await feed.stop()
        own = device_state_key(DEVICE_A, WEB)
        written = await lean_a.kv.put(BUCKET_DEVICE_STATE, own, b"report")
        stored = await operator_bus.get(BUCKET_DEVICE_STATE, own)
        assert stored is not None
        assert stored.revision == written

    event_loop_thread.run(scenario(), timeout=30)
    assert synced.is_set()
    assert [e.value for e in seen] == [b"first", b"second"]


def test_the_lean_client_meets_the_same_refusals(
    lean_a: LiteBus, operator_bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    async def scenario() -> None:
        victim = device_state_key(DEVICE_B, WEB)
        before = await operator_bus.get(BUCKET_DEVICE_STATE, victim)
        # Refused: the server drops it and answers nothing, so the request times out
        # (BusUnavailable), as it does over nats-py.
        with pytest.raises((BusError, BusUnavailable)):
            await lean_a.kv.put(BUCKET_DEVICE_STATE, victim, b"forged")
        with pytest.raises((BusError, BusUnavailable)):
            await lean_a.kv.get(BUCKET_DESIRED_STATE, desired_state_key(DEVICE_B, WEB))
        assert await operator_bus.get(BUCKET_DEVICE_STATE, victim) == before
        assert lean_a.connected  # a refusal is not the end of the connection

    event_loop_thread.run(scenario(), timeout=30)


def test_a_forged_signature_or_no_tls_trust_is_refused_at_connect(
    secure_fleet: SecureFleet, event_loop_thread: EventLoopThread, tmp_path: Path
) -> None:
    # A's JWT with another user's seed: the nonce's signature does not match the JWT.
    jwt = LeanCredentials.read(secure_fleet.creds[DEVICE_A]).jwt
    other = secure_fleet.authority.issue(device_permissions(DEVICE_B), expires_in=60.0)
    forged = tmp_path / "forged.creds"
    write_credentials(forged, jwt=jwt, seed=other.seed)
    untrusted = LiteBus(
        urls=[secure_fleet.server.url], name="no-ca", credentials=secure_fleet.creds[DEVICE_A],
        request_timeout=2.0, connect_timeout=3.0,
    )  # fmt: skip
    for bus in (lean_device(secure_fleet, forged), untrusted):

        async def attempt(bus: LiteBus = bus) -> None:
            await bus.start()
            try:
                with pytest.raises(BusUnavailable):
                    await bus.wait_connected(timeout=5)
            finally:
                await bus.close()

        event_loop_thread.run(attempt(), timeout=20)
