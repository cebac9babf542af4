"""Devices silent for longer than the retention are forgotten; one that comes back is not.

Real nats-server, the API emulator, the operator in-process. A live device keeps
beating (the operator forgets nobody while the whole fleet is quiet).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fleet.actors.operator.app import Operator
from fleet.contracts import BUCKET_DEVICE_HEARTBEAT, BUCKET_DEVICE_INFO, BUCKET_DEVICE_STATE, Phase
from tests.fixtures.kube import KubeCluster

from ..sim import SCORE, Fleet, eventually

SEL = {"matchLabels": {"role": "edge"}}
HOUR = 3600.0


def keys(fleet: Any, bucket: str) -> set[str]:
    return set(fleet.run(fleet.bus.snapshot(bucket)))


def test_a_silent_device_is_forgotten_marked_stale_and_welcomed_back(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["alive"], {"role": "edge"})
    fleet.info(["old"], {"role": "edge"}, age=HOUR)
    fleet.beat(["old"], age=HOUR)
    fleet.beat([f"ghost-{i}" for i in range(50)], age=HOUR)  # never announced themselves
    operator = start_operator(device_retention=3.0)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: set(fleet.desired()) == {"alive.web", "old.web"})
    fleet.report(["old"], "web", Phase.RUNNING, age=HOUR)
    eventually(lambda: kube.devices().get("old", {}).get("status", {}).get("labels"))

    def forgotten() -> bool:
        fleet.beat(["alive"])  # the fleet is not quiet
        assert set(fleet.desired()) == {"alive.web"}
        assert keys(fleet, BUCKET_DEVICE_HEARTBEAT) == {"heartbeat.alive"}
        assert keys(fleet, BUCKET_DEVICE_INFO) == {"info.alive"}
        assert keys(fleet, BUCKET_DEVICE_STATE) == set()
        status = kube.devices()["old"]["status"]
        assert status["stale"] is True
        assert status["staleSince"]
        assert status["online"] is False
        assert status["labels"] == {"role": "edge"}  # its last picture, kept
        return True

    eventually(forgotten, timeout=20, interval=0.2)
    eventually(lambda: kube.aggregate("ns", "web").get("targeted") == 1)
    summary = operator.summary()
    assert summary["forgotten"] == 51
    assert summary["heartbeats"] == 1
    assert summary["tracked"] == 1
    assert summary["device_actors"] == 1
    assert kube.devices()["alive"]["status"]["stale"] is False

    fleet.join(["old"], {"role": "edge"})  # its agent starts again: info, then beats
    eventually(lambda: set(fleet.desired()) == {"alive.web", "old.web"})
    eventually(lambda: kube.devices()["old"]["status"].get("stale") is False)
    assert "staleSince" not in kube.devices()["old"]["status"]
    eventually(lambda: kube.aggregate("ns", "web").get("targeted") == 2)


def test_nobody_is_forgotten_while_the_whole_fleet_is_silent(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.info(["a", "b"], {"role": "edge"}, age=HOUR)
    fleet.beat(["a", "b"], age=HOUR)
    operator = start_operator(device_retention=3.0, tick=0.1)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: set(fleet.desired()) == {"a.web", "b.web"})
    ticks = 0

    def many_sweeps_later() -> bool:
        nonlocal ticks
        ticks += 1
        return ticks > 60  # 60 polls of 0.1 s: well past retention and grace

    eventually(many_sweeps_later, timeout=20, interval=0.1)
    assert operator.summary()["forgotten"] == 0
    assert set(fleet.desired()) == {"a.web", "b.web"}
    assert keys(fleet, BUCKET_DEVICE_INFO) == {"info.a", "info.b"}
