"""Hostile bucket entries reach a running operator: nothing dies, a neighbour stays right.

Real nats-server, the API emulator, the operator in-process (the suite fails any test in
which an actor died). The buckets' size limits are lifted first, as on a bucket made by
an older release, so values far over the wire bounds reach the operator too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from fleet.actors.operator.app import Operator
from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    Phase,
)
from fleet.contracts.keys import ALL_BUCKETS
from tests.fixtures.kube import KubeCluster

from ..sim import INVENTORY, SCORE, Fleet, eventually, now

SEL = {"matchLabels": {"role": "edge"}}
DEEP = b"[" * 1000 + b"]" * 1000  # 2 KB
HUGE = b'{"device_id":"d1","pad":"' + b"x" * 900_000 + b'"}'


def lift_limits(fleet: Any) -> None:
    async def go() -> None:
        for bucket in ALL_BUCKETS:
            info = await fleet.bus.js.stream_info(f"KV_{bucket}")
            await fleet.bus.js.update_stream(info.config.evolve(max_msg_size=-1))

    fleet.run(go())


def hostile(device: str) -> dict[str, list[tuple[str, bytes]]]:
    """Bad entries for each bucket: deep, huge, wrong types, foreign ids, bad keys."""
    at = now().isoformat()
    wrong = json.dumps({"device_id": 5, "at": at, "seq": "one", "labels": {"a": 1}}).encode()
    inventory = json.dumps({"hostname": "h", "cpus": 1, "memory_bytes": 1, "arch": "x",
                            "os": "o", "kernel": "k", "runtime_name": "r",
                            "runtime_version": "v"})  # fmt: skip
    foreign_info = json.dumps({
        "device_id": "d2", "labels": {}, "agent_version": "1", "updated_at": at,
        "inventory": json.loads(inventory),
    }).encode()  # fmt: skip
    return {
        BUCKET_DEVICE_HEARTBEAT: [
            (f"heartbeat.{device}", DEEP), (f"heartbeat.{device}", HUGE),
            (f"heartbeat.{device}", wrong), ("heartbeat.d7", b'{"device_id":"d1","at":"%s",'
                                            b'"seq":1}' % at.encode()),
            ("heartbeat.a.b", b"{}"), ("heartbeat.x", b"\xff\xfe\x00"),
        ],
        BUCKET_DEVICE_INFO: [
            (f"info.{device}", DEEP), (f"info.{device}", HUGE), (f"info.{device}", wrong),
            ("info.d9", foreign_info), ("info.a.b", b"{}"),
        ],
        BUCKET_DEVICE_STATE: [
            (f"state.{device}.web", DEEP), (f"state.{device}.web", HUGE),
            (f"state.{device}.web", b'{"phase":"Running","desired_revision":1e400}'),
            ("state.d1", b"{}"),
        ],
        BUCKET_DESIRED_STATE: [(f"{device}.junk", DEEP), ("nodots", HUGE)],
    }  # fmt: skip


@pytest.mark.timeout(120)
def test_hostile_entries_kill_nothing_and_leave_a_neighbour_right(
    kube: KubeCluster,
    fleet: Fleet,
    start_operator: Callable[..., Operator],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="fleet.actors.operator.sources")
    lift_limits(fleet)
    fleet.join(["d1", "d2"], {"role": "edge"})
    for bucket, entries in hostile("d8").items():  # some are there before the operator
        for key, value in entries:
            fleet.put_raw(bucket, key, value)
    start_operator(skip_log_window=1.0)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: set(fleet.desired()) >= {"d1.web", "d2.web"})
    fleet.report(["d1", "d2"], "web", Phase.RUNNING)
    healthy = {"targeted": 2, "running": 2, "pending": 0, "failed": 0, "unreachable": 0}
    eventually(lambda: kube.aggregate("ns", "web") == healthy)

    for bucket, entries in hostile("d1").items():  # and more while it runs
        for key, value in entries:
            fleet.put_raw(bucket, key, value)

    async def flood() -> None:  # 10,000 bad heartbeats under made-up keys
        puts = [fleet.bus.put(BUCKET_DEVICE_HEARTBEAT, f"heartbeat.flood-{i}", DEEP)
                for i in range(10_000)]  # fmt: skip
        for i in range(0, len(puts), 1000):
            await asyncio.gather(*puts[i : i + 1000])

    fleet.run(flood(), timeout=60)
    fleet.join(["d3"], {"role": "edge"})  # the sources still work after all that
    eventually(lambda: "d3.web" in fleet.desired(), timeout=20)
    fleet.report(["d3"], "web", Phase.RUNNING)
    fleet.beat(["d1", "d2", "d3"])
    eventually(lambda: kube.aggregate("ns", "web") == {**healthy, "targeted": 3, "running": 3})
    eventually(lambda: kube.devices()["d1"]["status"]["labels"] == {"role": "edge"})
    eventually(lambda: any("skipped" in r.getMessage() and "more malformed entries of "
                           "device-heartbeat" in r.getMessage() for r in caplog.records),
               timeout=10)  # fmt: skip
    lines = [r for r in caplog.records if r.name == "fleet.actors.operator.sources"]
    assert len(lines) < 100, f"{len(lines)} lines for 10,000+ bad entries"
    text = caplog.text
    assert "device-heartbeat/heartbeat.d1" in text
    assert "device-info/info.d9" in text  # a key and a value naming different devices
    assert "nests" in text or "too large" in text
    assert INVENTORY.arch == "x86_64"
