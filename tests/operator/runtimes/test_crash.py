"""A real ``fleet-operator`` SIGKILLed while writing a kvm score's entries, restarted.

Most of the fleet lists kvm, a tenth podman only, a tenth nothing (an older agent:
podman only). Whatever the kill interrupted, no device that cannot run kvm is ever
written an entry (the tap sees every write), and after the restart every one that can
has its entry, written once, while the others are counted in the Ready condition.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.fixtures.kube import KubeCluster
from tests.fixtures.nats import NatsServer

from ..process import operator_process
from ..rollouts.tap import DesiredTap
from ..sim import Fleet, eventually
from .scores import KVM

# More writes than the templating crash test's 1,000, so the SIGKILL at the first write
# lands mid-write on a loaded machine (at 334 writes it often came after the last).
DEVICES = [f"dev-{i:04d}" for i in range(1500)]
RUNS_KVM = [d for i, d in enumerate(DEVICES) if i % 10 < 8]  # 1,200
PODMAN_ONLY = [d for i, d in enumerate(DEVICES) if i % 10 == 8]
OLDER = [d for i, d in enumerate(DEVICES) if i % 10 == 9]
LIVE = 600.0  # the simulated devices beat once: they must stay reachable throughout
SEL = {"matchLabels": {"role": "edge"}}
EDGE = {"role": "edge"}


def entries(fleet: Fleet) -> set[str]:
    return {k.partition(".")[0] for k in fleet.desired() if k.endswith(".app")}


@pytest.mark.timeout(180)
def test_a_restart_mid_write_never_writes_an_unrunnable_entry(
    kube: KubeCluster, fleet: Fleet, nats_server: NatsServer, tmp_path: Path
) -> None:
    tap = DesiredTap(fleet.bus, fleet.loop).start()
    try:
        fleet.join(RUNS_KVM, EDGE, runtimes=["podman", "kvm"])
        fleet.join(PODMAN_ONLY, EDGE, runtimes=["podman"])
        fleet.join(OLDER, EDGE)
        with operator_process(
            nats_server.url, kube.url, tmp_path / "first.log", liveness=LIVE
        ) as first:
            killed = tap.on_first_write("app", lambda: os.kill(first.pid, signal.SIGKILL))
            kube.create_deployment("ns", "app", selector=SEL, score=KVM)
            assert killed.wait(timeout=60), "the operator never wrote"
            first.wait(timeout=30)
        assert first.returncode == -signal.SIGKILL
        assert len(entries(fleet)) < len(RUNS_KVM)  # killed mid-write

        unrunnable = len(PODMAN_ONLY) + len(OLDER)
        with operator_process(nats_server.url, kube.url, tmp_path / "second.log", liveness=LIVE):
            eventually(lambda: entries(fleet) == set(RUNS_KVM), timeout=90, interval=0.3)
            eventually(
                lambda: kube.ready("ns", "app")["message"].startswith(
                    f"{unrunnable} devices cannot run the score's type"
                ),
                timeout=60,
            )
            listed = [u["device"] for u in kube.status("ns", "app")["unrunnable"]]
            assert listed == sorted(PODMAN_ONLY + OLDER)[:10]
            aggregate = kube.aggregate("ns", "app")
            assert aggregate["targeted"] == len(DEVICES)
            assert aggregate["pending"] == len(DEVICES)  # nothing reported yet

        counts = Counter(w.device for w in tap.writes("app"))
        assert set(counts) == set(RUNS_KVM), sorted(set(counts) - set(RUNS_KVM))[:10]
        twice = {device: n for device, n in counts.items() if n > 1}
        assert twice == {}, f"written more than once: {twice}"
    finally:
        tap.stop()
