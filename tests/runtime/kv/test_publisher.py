"""Windowed KV writes: every write gets its revision or its error, in item order."""

from __future__ import annotations

import asyncio

import pytest

from fleet.contracts import BUCKET_DESIRED_STATE
from fleet.errors import BusUnavailable
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv_publish import KvPublisher, WriteResult
from tests.fixtures.nats import NatsServer


def test_puts_and_deletes_return_their_revisions_in_order(
    bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    async def go() -> tuple[list[WriteResult], list[WriteResult], list[WriteResult]]:
        publisher = KvPublisher(bus, in_flight=8)  # far fewer than the items: the window cycles
        try:
            items = [(f"d{i}.web", f"v{i}".encode()) for i in range(500)]
            # Two batches at once share the window; each still gets its own results.
            first, second = await asyncio.gather(
                publisher.write_many(BUCKET_DESIRED_STATE, items[:250]),
                publisher.write_many(BUCKET_DESIRED_STATE, items[250:]),
            )
            deleted = await publisher.write_many(BUCKET_DESIRED_STATE, [("d0.web", None)])
        finally:
            await publisher.close()
        return first, second, deleted

    first, second, deleted = event_loop_thread.run(go(), timeout=30)
    results = [*first, *second]
    assert all(isinstance(r, int) for r in results)
    revisions = [r for r in results if isinstance(r, int)]
    assert len(set(revisions)) == 500  # one stream message each
    snapshot = event_loop_thread.run(bus.snapshot(BUCKET_DESIRED_STATE), timeout=10)
    assert "d0.web" not in snapshot  # the delete is a KV delete marker
    for i in range(1, 500):
        entry = snapshot[f"d{i}.web"]
        assert entry.value == f"v{i}".encode()
        assert entry.revision == revisions[i]  # the result is that write's revision
    assert deleted == [max(revisions) + 1]
    marker = event_loop_thread.run(bus.last_revision(BUCKET_DESIRED_STATE, "d0.web"), timeout=5)
    assert marker == deleted[0]


@pytest.mark.timeout(60)
def test_a_write_without_acknowledgement_fails_as_unavailable(
    bus: Bus, event_loop_thread: EventLoopThread, nats_server: NatsServer
) -> None:
    publisher = KvPublisher(bus, in_flight=4, timeout=1.0)
    run = event_loop_thread.run
    try:
        run(publisher.write_many(BUCKET_DESIRED_STATE, [("d1.web", b"x")]), timeout=10)
        nats_server.stop()
        try:
            items = [(f"d{i}.web", b"y") for i in range(10)]
            results = run(publisher.write_many(BUCKET_DESIRED_STATE, items), timeout=20)
        finally:
            nats_server.restart()
            run(bus.wait_connected(timeout=15), timeout=20)
        assert len(results) == 10
        assert all(isinstance(r, BusUnavailable) for r in results), results
        # and once the server is back, the same publisher writes again
        again = run(publisher.write_many(BUCKET_DESIRED_STATE, [("d1.web", b"z")]), timeout=20)
        assert isinstance(again[0], int)
    finally:
        run(publisher.close(), timeout=10)
