"""A real ``fleet-operator`` SIGKILLed in the middle of a rollout's batch, then restarted.

The restarted operator must go on where the rollout was: the batch being written is
completed (each device's entry written once), no later batch starts before it reaches
its threshold, and the rollout ends Complete. Every write is tapped, so "once" and
"not before" are about every write ever made.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from fleet.actors.operator.rollout import rank
from fleet.contracts import DeviceId, Phase, convert_score, encode_score
from tests.fixtures.kube import KubeCluster
from tests.fixtures.nats import NatsServer

from ..process import operator_process
from ..sim import SCORE, SCORE_V2, Fleet, eventually
from .tap import DesiredTap

DEVICES = [f"dev-{i:03d}" for i in range(200)]
SEL = {"matchLabels": {"role": "edge"}}
LIVE = 600.0  # the simulated devices beat once: they must stay reachable throughout
V1, V2 = encode_score(convert_score(SCORE)), encode_score(convert_score(SCORE_V2))
# the second batch goes out 10 at a time: the kill comes with most of it still to write
ROLLOUT = {
    "batches": [{"size": "5%"}, {"size": "45%"}],
    "maxUnavailable": 10,
    "failureThreshold": "5%",
}
RANKED = sorted(DEVICES, key=lambda d: rank("web", DeviceId(d)))
BATCHES = (set(RANKED[:10]), set(RANKED[10:100]), set(RANKED[100:]))


def holding(fleet: Fleet, value: bytes) -> set[str]:
    return {
        key.partition(".")[0]
        for key, entry in fleet.desired().items()
        if key.endswith(".web") and bytes(entry.value) == value
    }


def rollout(kube: KubeCluster) -> dict[str, Any]:
    status: dict[str, Any] = kube.status("ns", "web").get("rollout") or {}
    return status


class KillOnSecondBatch:
    """SIGKILLs the operator at the first write of the new score to a device outside the
    first batch: the second batch is then being written."""

    def __init__(self, tap: DesiredTap, first: set[str], pid: int) -> None:
        self.killed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(tap, first, pid), daemon=True)
        self._thread.start()

    def _run(self, tap: DesiredTap, first: set[str], pid: int) -> None:
        while not self._stop.wait(0.002):
            if tap.devices_given("web", V2) - first:
                os.kill(pid, signal.SIGKILL)
                self.killed.set()
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.mark.timeout(180)
def test_a_rollout_killed_mid_batch_goes_on_where_it_was(
    kube: KubeCluster, fleet: Fleet, nats_server: NatsServer, tmp_path: Path
) -> None:
    tap = DesiredTap(fleet.bus, fleet.loop).start()
    try:
        fleet.join(DEVICES, {"role": "edge"})
        with operator_process(
            nats_server.url, kube.url, tmp_path / "first.log", liveness=LIVE
        ) as first:
            kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
            eventually(lambda: len(holding(fleet, V1)) == 200, timeout=30)
            fleet.report(DEVICES, "web", Phase.RUNNING)
            eventually(lambda: kube.aggregate("ns", "web").get("running") == 200, timeout=30)

            kube.patch_deployment_spec("ns", "web", {"score": SCORE_V2, "rollout": ROLLOUT})
            eventually(lambda: len(holding(fleet, V2)) == 10, timeout=30)
            batch1 = holding(fleet, V2)
            assert batch1 == BATCHES[0]
            killer = KillOnSecondBatch(tap, batch1, first.pid)
            try:
                fleet.report(sorted(batch1), "web", Phase.RUNNING)
                assert killer.killed.wait(timeout=60), "the second batch never started"
            finally:
                killer.stop()
            first.wait(timeout=30)
        assert first.returncode == -signal.SIGKILL
        assert len(tap.devices_given("web", V2) & BATCHES[1]) < 90  # killed mid-batch

        with operator_process(nats_server.url, kube.url, tmp_path / "second.log", liveness=LIVE):

            def batch_running(batch: set[str]) -> bool:
                held = holding(fleet, V2) & batch
                fleet.report(sorted(held), "web", Phase.RUNNING)  # 10 at a time
                return held == batch

            def second_batch_running() -> bool:
                given = tap.devices_given("web", V2)
                assert given <= BATCHES[0] | BATCHES[1], "a later batch started early"
                return batch_running(BATCHES[1])

            eventually(second_batch_running, timeout=90, interval=0.3)
            eventually(lambda: batch_running(BATCHES[2]), timeout=90, interval=0.3)
            eventually(lambda: rollout(kube).get("phase") == "Complete", timeout=60)
        counts = tap.puts_per_device("web", V2)
        assert set(counts) == set(DEVICES)
        twice = {device: n for device, n in counts.items() if n > 1}
        assert twice == {}, f"written more than once: {twice}"
    finally:
        tap.stop()
