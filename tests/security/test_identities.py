"""The broader identities do their jobs, and no more: the operator writes, fleetctl reads.

And the lookup every read starts with (the highest revision among a filter's keys, now
a direct get with the filter in the subject so that a device's credentials can allow
exactly its own keys) is checked on the real server, open and with credentials.
"""

from __future__ import annotations

import asyncio

import pytest

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeviceId,
    desired_state_key,
)
from fleet.errors import BusUnavailable
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.permissions import fleetctl_permissions
from tests.security.conftest import DEVICE_A, DEVICE_B, SecureFleet

WEB = DeploymentName("web")


def test_fleetctl_reads_every_bucket_and_writes_nothing(
    secure_fleet: SecureFleet,
    operator_bus: Bus,
    event_loop_thread: EventLoopThread,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What ``fleetctl`` does (open the buckets, read each one whole, answering the
    server's flow control), with its credentials; a put is refused."""
    fleetctl = secure_fleet.bus(
        secure_fleet.creds["fleetctl"], fleetctl_permissions(), name="fleetctl",
        create_buckets=True,
    )  # fmt: skip

    async def scenario() -> None:
        await asyncio.gather(  # 3 MB: nats-server asks for flow control answers on the way
            *(
                operator_bus.put(
                    BUCKET_DESIRED_STATE, desired_state_key(DeviceId(f"dev{i}"), WEB),
                    b"x" * 10_000,
                )
                for i in range(300)
            )
        )  # fmt: skip
        await fleetctl.start()
        try:
            await fleetctl.wait_connected(timeout=10)
            await fleetctl.ensure_buckets()
            desired = await fleetctl.snapshot(BUCKET_DESIRED_STATE, timeout=20)
            assert len(desired) >= 300
            assert set(await fleetctl.snapshot(BUCKET_DESIRED_STATE, f"*.{WEB}", timeout=20)) >= {
                desired_state_key(DeviceId("dev0"), WEB)
            }
            await fleetctl.snapshot(BUCKET_DEVICE_INFO, timeout=20)
            with pytest.raises(BusUnavailable):  # refused: no reply comes
                await fleetctl.put(BUCKET_DEVICE_STATE, "state.dev0.web", b"forged")
        finally:
            await fleetctl.close()
        assert await operator_bus.get(BUCKET_DEVICE_STATE, "state.dev0.web") is None

    event_loop_thread.run(scenario(), timeout=90)
    refused = [r.getMessage() for r in caplog.records if "refused fleetctl" in r.getMessage()]
    assert refused == [f'NATS refused fleetctl: nats: permissions violation for publish to "{w}"'
                       for w in ("$kv.device-state.state.dev0.web",)]  # fmt: skip


def test_the_operator_owns_the_buckets(
    operator_bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    """Ensure (and bound) the buckets, write and delete with compare-and-swap."""

    async def scenario() -> None:
        await operator_bus.ensure_buckets(enforce_limits=True)
        key = desired_state_key(DEVICE_A, DeploymentName("owned"))
        rev = await operator_bus.put(BUCKET_DESIRED_STATE, key, b"v1")
        rev2 = await operator_bus.update(BUCKET_DESIRED_STATE, key, b"v2", last=rev)
        await operator_bus.delete(BUCKET_DESIRED_STATE, key, last=rev2)
        assert await operator_bus.get(BUCKET_DESIRED_STATE, key) is None
        info = await operator_bus.js.stream_info(f"KV_{BUCKET_DESIRED_STATE}")
        assert info.config.allow_rollup_hdrs is False

    event_loop_thread.run(scenario(), timeout=30)


def test_the_last_revision_among_a_filters_keys_comes_from_the_subject(
    bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    """On an open nats-server: a wildcard in the subject of a direct get returns the
    message with the highest sequence among the matching subjects (a delete marker
    counts; none: 0)."""
    put = bus.put

    async def scenario() -> None:
        revs = {}
        for key in ("dev1.web", "dev10.web", "dev1.db", "dev2.web", "dev1_x.web"):
            revs[key] = await put(BUCKET_DESIRED_STATE, key, key.encode())
        assert await bus.last_revision(BUCKET_DESIRED_STATE, "dev1.*") == revs["dev1.db"]
        assert await bus.last_revision(BUCKET_DESIRED_STATE, "*.web") == revs["dev1_x.web"]
        assert await bus.last_revision(BUCKET_DESIRED_STATE, ">") == revs["dev1_x.web"]
        assert await bus.last_revision(BUCKET_DESIRED_STATE, "dev3.*") == 0
        marker = await bus.delete(BUCKET_DESIRED_STATE, "dev1.web")
        assert await bus.last_revision(BUCKET_DESIRED_STATE, "dev1.*") == marker

    event_loop_thread.run(scenario(), timeout=30)


def test_a_device_reads_its_own_mark_and_no_one_elses(
    operator_bus: Bus, device_a_bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    async def scenario() -> None:
        own = await operator_bus.put(BUCKET_DESIRED_STATE, desired_state_key(DEVICE_A, WEB), b"a")
        await operator_bus.put(BUCKET_DESIRED_STATE, desired_state_key(DEVICE_B, WEB), b"b")
        assert await device_a_bus.last_revision(BUCKET_DESIRED_STATE, f"{DEVICE_A}.*") == own
        for other in (f"{DEVICE_B}.*", "*.web", ">"):
            with pytest.raises(BusUnavailable):  # refused: no reply comes
                await device_a_bus.last_revision(BUCKET_DESIRED_STATE, other)

    event_loop_thread.run(scenario(), timeout=30)
