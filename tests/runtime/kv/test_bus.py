"""The Bus against a real nats-server: KV operations, errors, connecting late."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
)
from fleet.contracts.limits import BUCKET_VALUE_LIMITS
from fleet.errors import BusError, BusUnavailable, KeyExists, RevisionMismatch, TemporaryError
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus, max_value_size
from tests.fixtures.nats import NatsServer, free_port


def test_put_get_update_delete(bus: Bus, event_loop_thread: EventLoopThread) -> None:
    run = event_loop_thread.run
    rev1 = run(bus.put(BUCKET_DESIRED_STATE, "pi-01.web", b"v1"), timeout=5)
    entry = run(bus.get(BUCKET_DESIRED_STATE, "pi-01.web"), timeout=5)
    assert entry is not None
    assert (entry.value, entry.revision, entry.deleted) == (b"v1", rev1, False)

    rev2 = run(bus.update(BUCKET_DESIRED_STATE, "pi-01.web", b"v2", last=rev1), timeout=5)
    assert rev2 > rev1
    with pytest.raises(RevisionMismatch, match="no longer at that revision"):
        run(bus.update(BUCKET_DESIRED_STATE, "pi-01.web", b"v3", last=rev1), timeout=5)
    with pytest.raises(KeyExists, match=r"pi-01\.web already exists"):
        run(bus.create(BUCKET_DESIRED_STATE, "pi-01.web", b"again"), timeout=5)
    entry = run(bus.get(BUCKET_DESIRED_STATE, "pi-01.web"), timeout=5)
    assert entry is not None
    assert entry.value == b"v2"  # the lost races changed nothing

    run(bus.delete(BUCKET_DESIRED_STATE, "pi-01.web"), timeout=5)
    assert run(bus.get(BUCKET_DESIRED_STATE, "pi-01.web"), timeout=5) is None
    assert run(bus.get(BUCKET_DESIRED_STATE, "never.written"), timeout=5) is None
    # a deleted key can be created again
    run(bus.create(BUCKET_DESIRED_STATE, "pi-01.web", b"v4"), timeout=5)


def test_ensure_buckets_is_idempotent_across_processes(
    bus: Bus, nats_server: NatsServer, event_loop_thread: EventLoopThread
) -> None:
    run = event_loop_thread.run
    run(bus.put(BUCKET_DEVICE_INFO, "info.pi-01", b"kept"), timeout=5)
    other = Bus(urls=[nats_server.url], name="other")

    async def second() -> list[str]:
        await other.start()
        await other.wait_connected(timeout=5)
        await other.ensure_buckets()
        await other.ensure_buckets()
        names: list[str] = []
        for info in await other.js.streams_info():
            assert info.config.name is not None
            names.append(info.config.name)
        await other.close()
        return sorted(names)

    names = run(second(), timeout=15)
    assert names == sorted(
        f"KV_{b}"
        for b in (
            BUCKET_DESIRED_STATE,
            BUCKET_DEVICE_INFO,
            BUCKET_DEVICE_STATE,
            BUCKET_DEVICE_HEARTBEAT,
        )
    )
    entry = run(bus.get(BUCKET_DEVICE_INFO, "info.pi-01"), timeout=5)
    assert entry is not None
    assert entry.value == b"kept"  # ensuring again lost nothing


def test_buckets_keep_one_value_per_key_and_allow_direct_get(
    bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    async def configs() -> list[tuple[int, bool]]:
        out = []
        for b in (
            BUCKET_DESIRED_STATE,
            BUCKET_DEVICE_INFO,
            BUCKET_DEVICE_STATE,
            BUCKET_DEVICE_HEARTBEAT,
        ):
            info = await bus.js.stream_info(f"KV_{b}")
            out.append((info.config.max_msgs_per_subject, bool(info.config.allow_direct)))
        return out

    assert event_loop_thread.run(configs(), timeout=5) == [(1, True)] * 4


def test_unreachable_server_is_a_temporary_error(
    bus: Bus, nats_server: NatsServer, event_loop_thread: EventLoopThread
) -> None:
    nats_server.stop()
    with pytest.raises(BusUnavailable) as info:
        event_loop_thread.run(bus.put(BUCKET_DEVICE_HEARTBEAT, "heartbeat.pi-01", b"x"), timeout=10)
    assert isinstance(info.value, TemporaryError)
    assert "heartbeat.pi-01" in str(info.value)


def test_bus_started_before_the_server_connects_when_it_appears(
    tmp_path: Path, event_loop_thread: EventLoopThread
) -> None:
    server = NatsServer(store_dir=tmp_path / "late", port=free_port())
    seen: list[bool] = []
    late = Bus(urls=[server.url], name="late", on_connection=seen.append)
    event_loop_thread.run(late.start(), timeout=5)
    with pytest.raises(BusUnavailable, match="not reachable"):
        event_loop_thread.run(late.wait_connected(timeout=0.5), timeout=5)
    server.start()
    try:
        event_loop_thread.run(late.wait_connected(timeout=15), timeout=20)
        event_loop_thread.run(late.ensure_buckets(), timeout=10)
        rev = event_loop_thread.run(late.put(BUCKET_DEVICE_STATE, "state.a.b", b"1"), timeout=5)
        assert rev == 1
        assert seen[:1] == [True]
    finally:
        event_loop_thread.run(late.close(), timeout=10)
        server.stop()


def test_other_server_errors_are_fleet_errors(bus: Bus, event_loop_thread: EventLoopThread) -> None:
    from fleet.errors import BusError

    with pytest.raises(BusError, match="put desired-state/bad key"):
        # a key with a space is not a valid subject: nats-py refuses it
        event_loop_thread.run(bus.put(BUCKET_DESIRED_STATE, "bad key", b"x"), timeout=5)


def test_buckets_refuse_values_over_their_bound(
    bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    """The server itself refuses an oversized put: a reader never has to hold one."""
    run = event_loop_thread.run
    for bucket, limit in BUCKET_VALUE_LIMITS.items():
        run(bus.put(bucket, "x.fits", b"x" * limit), timeout=5)
        with pytest.raises(BusError, match="maximum"):
            run(bus.put(bucket, "x.too-big", b"x" * (max_value_size(bucket) + 1)), timeout=5)
        assert run(bus.get(bucket, "x.too-big"), timeout=5) is None


def test_the_operator_bounds_buckets_an_older_release_made(
    nats_server: NatsServer, event_loop_thread: EventLoopThread
) -> None:
    """Buckets created without a maximum value size get one; their entries stay."""
    run = event_loop_thread.run
    old = Bus(urls=[nats_server.url], name="old-release")

    async def scenario() -> dict[str, int]:
        await old.start()
        await old.wait_connected(timeout=5)
        for bucket in BUCKET_VALUE_LIMITS:
            kv = await old.js.create_key_value(bucket=bucket, history=1, direct=True)
            await kv.put("kept.entry", b"old value")
        await old.ensure_buckets(enforce_limits=True)
        limits = {}
        for bucket in BUCKET_VALUE_LIMITS:
            info = await old.js.stream_info(f"KV_{bucket}")
            limits[bucket] = int(info.config.max_msg_size or -1)
            assert (await old.get(bucket, "kept.entry")).value == b"old value"  # type: ignore[union-attr]
        await old.close()
        return limits

    limits = run(scenario(), timeout=30)
    assert limits == {bucket: max_value_size(bucket) for bucket in BUCKET_VALUE_LIMITS}
