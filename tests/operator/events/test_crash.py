"""A real ``fleet-operator`` SIGKILLed after a Deployment became Ready, then restarted: what
the Events say stays true. The restarted process reads the status the killed one patched,
so it posts no second ``Ready`` for a Deployment that was Ready all along, and goes on
posting what changes after it (``NotReady``, ``DevicesFailed``)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from fleet.contracts import Phase
from tests.fixtures.kube import KubeCluster
from tests.fixtures.nats import NatsServer

from ..process import operator_process
from ..sim import SCORE, Fleet, eventually
from .conftest import events_for

SEL = {"matchLabels": {"role": "edge"}}


@pytest.mark.timeout(180)
def test_a_sigkilled_operator_restarted_tells_no_ready_twice_and_goes_on(
    kube: KubeCluster, fleet: Fleet, nats_server: NatsServer, tmp_path: Path
) -> None:
    fleet.join(["d1", "d2"], {"role": "edge"})
    with operator_process(nats_server.url, kube.url, tmp_path / "first.log") as first:
        kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
        eventually(lambda: len(fleet.desired()) == 2, timeout=60)
        fleet.report(["d1", "d2"], "web", Phase.RUNNING)
        eventually(lambda: events_for(kube, "Deployment", "web", "Ready"), timeout=60)
        first.kill()
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    patched = kube.status_patches()

    with operator_process(nats_server.url, kube.url, tmp_path / "second.log"):
        # its first status (all running, as before): a Ready then would be a second one
        eventually(lambda: kube.status_patches() > patched, timeout=60)
        fleet.report(["d2"], "web", Phase.FAILED, message="exit code 1")
        (failed,) = eventually(lambda: events_for(kube, "Deployment", "web", "DevicesFailed"),
                               timeout=60)  # fmt: skip
        assert failed["message"] == "1 of 2 targeted devices failed: d2; d2: exit code 1"
        eventually(lambda: events_for(kube, "Deployment", "web", "NotReady"), timeout=60)
        (ready,) = events_for(kube, "Deployment", "web", "Ready")  # the first process's
        assert ready["count"] == 1
