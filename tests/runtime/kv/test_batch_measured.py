"""The batch writer measures each batch once, when it ends: keys written, keys not, and
how long it took (the operator's desired-write metrics), at no cost per key."""

from __future__ import annotations

import pytest

from fleet.contracts import BUCKET_DESIRED_STATE
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv_batch import KvBatchWriter

pytestmark = pytest.mark.timeout(60)


def test_each_batch_is_observed_once_with_its_outcome(
    bus: Bus, event_loop_thread: EventLoopThread
) -> None:
    seen: list[tuple[str, int, int, float]] = []
    writer = KvBatchWriter(
        kv=bus.kv, loop_thread=event_loop_thread, in_flight=16,
        observe=lambda op, ok, failed, seconds: seen.append((op, ok, failed, seconds)),
    )  # fmt: skip
    try:
        items = [(f"m{i}.web", b"v") for i in range(300)]
        revisions = [r for r in writer.put_many(BUCKET_DESIRED_STATE, items).result(20)
                     if isinstance(r, int)]  # fmt: skip
        keys = [k for k, _ in items[:5]]
        stale = [r if i != 2 else 1 for i, r in enumerate(revisions[:5])]  # one lost race
        writer.delete_many(BUCKET_DESIRED_STATE, keys, last=stale).result(20)
    finally:
        writer.close()
    assert [(op, ok, failed) for op, ok, failed, _ in seen] == [("put", 300, 0), ("delete", 4, 1)]
    assert all(0 < seconds < 20 for *_, seconds in seen)
