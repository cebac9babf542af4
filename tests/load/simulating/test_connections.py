"""The swarm's connections: either client, shared by ``devices_per_connection`` devices."""

from __future__ import annotations

import os

import pytest

from fleet.contracts import BUCKET_DEVICE_INFO
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from loadtest.connections import CLIENTS, ConnectionPool
from loadtest.litebus import LiteBus
from loadtest.options import parse_args
from tests.fixtures.nats import NatsServer


@pytest.mark.parametrize("client", CLIENTS)
def test_devices_share_connections_of_the_chosen_client(
    client: str, bus: Bus, nats_server: NatsServer, event_loop_thread: EventLoopThread
) -> None:
    pool = ConnectionPool(
        urls=[nats_server.url], devices_per_connection=2, name="pool-test", client=client
    )

    async def use() -> tuple[list[object], int]:
        try:
            buses = [await pool.bus_for(n, f"pooled-{n}") for n in range(5)]
            revision = await buses[4].put(BUCKET_DEVICE_INFO, "info.pooled", b"{}")
            return buses, revision  # type: ignore[return-value]
        finally:
            await pool.close()

    buses, revision = event_loop_thread.run(use(), timeout=30)
    assert buses[0] is buses[1]
    assert buses[2] is buses[3]
    assert len({id(b) for b in buses}) == 3  # devices 0-1, 2-3 and 4
    assert isinstance(buses[0], LiteBus if client == "lite" else Bus)
    entry = event_loop_thread.run(bus.get(BUCKET_DEVICE_INFO, "info.pooled"), timeout=5)
    assert entry is not None
    assert entry.revision == revision


def test_an_unknown_client_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'grpc'"):
        ConnectionPool(
            urls=["nats://127.0.0.1:1"], devices_per_connection=1, name="x", client="grpc"
        )


def test_default_processes_never_exceed_the_cores() -> None:
    args = parse_args(["--devices", "100000"])
    assert 1 <= args.processes <= min(4, os.cpu_count() or 1)
    assert args.client == "lite"
    assert parse_args(["--devices", "100000", "--processes", "3"]).processes == 3
