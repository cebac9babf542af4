"""Two agents beating under one device id: a WARNING and a Device condition, then cleared."""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable
from typing import Any

import pytest

from fleet.actors.operator import messages as m
from fleet.actors.operator.app import Operator
from fleet.actors.operator.skiplog import SkipLog
from fleet.actors.operator.sources import DECODERS
from fleet.contracts import (
    BUCKET_DEVICE_HEARTBEAT,
    DeviceId,
    HeartbeatPayload,
    encode_heartbeat,
)
from fleet.runtime.nats.kv import KvEntry
from tests.fixtures.kube import KubeCluster

from ..sim import Fleet, eventually, now


def beat(instance: str) -> bytes:
    return encode_heartbeat(
        HeartbeatPayload(device_id=DeviceId("d1"), at=now(), seq=1, instance_id=instance)
    )


def condition(kube: Any) -> dict[str, Any]:
    conditions = kube.devices()["d1"]["status"].get("conditions") or []
    return next((c for c in conditions if c["type"] == "DuplicateDeviceId"), {})


def test_interleaved_instances_are_reported_and_cleared(
    kube: KubeCluster,
    fleet: Fleet,
    start_operator: Callable[..., Operator],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fleet.actors.operator.fleet")
    fleet.info(["d1"], {"role": "edge"})
    start_operator()
    fleet.beat(["d1"], instance="run-A")
    fleet.beat(["d1"], instance="run-A")
    fleet.beat(["d1"], instance="run-B")  # a restart so far: A..A then B
    eventually(lambda: kube.devices()["d1"]["status"].get("online") is True)
    assert condition(kube) == {}
    fleet.beat(["d1"], instance="run-A")  # back to A within the liveness timeout: two agents

    def flagged() -> bool:
        cond = condition(kube)
        assert cond["status"] == "True"
        assert "run-A" in cond["message"]
        assert "run-B" in cond["message"]
        return True

    eventually(flagged)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("d1" in w and "run-A and run-B" in w for w in warnings), warnings

    def cleared() -> bool:
        fleet.beat(["d1"], instance="run-A")  # alone, for a whole liveness timeout (2 s)
        assert condition(kube)["status"] == "False"
        return True

    eventually(cleared, timeout=15, interval=0.2)


def test_a_b_a_in_one_batch_is_not_hidden_by_coalescing() -> None:
    entries = tuple(
        KvEntry(bucket=BUCKET_DEVICE_HEARTBEAT, key="heartbeat.d1", value=beat(i), revision=n)
        for n, i in enumerate(["A", "B", "A"], start=1)
    )
    skips = SkipLog(logging.getLogger("test"), what="entries")
    msg = DECODERS[BUCKET_DEVICE_HEARTBEAT](entries, skips)
    assert isinstance(msg, m.BeatsSeen)
    (only,) = msg.beats
    assert only.instances == ("A", "B", "A")
    assert only.revision == 3


@pytest.mark.timeout(60)
def test_a_b_a_written_at_once_is_flagged(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.info(["d1"], {"role": "edge"})
    start_operator()
    fleet.beat(["d1"], instance="run-A")
    eventually(lambda: kube.devices()["d1"]["status"].get("online") is True)

    async def burst() -> None:
        for instance in ("run-B", "run-A", "run-B", "run-A"):
            await fleet.bus.put(BUCKET_DEVICE_HEARTBEAT, "heartbeat.d1", beat(instance))

    fleet.run(asyncio.wait_for(burst(), timeout=10))
    eventually(lambda: condition(kube).get("status") == "True")
    assert datetime.datetime.fromisoformat(condition(kube)["lastTransitionTime"])
