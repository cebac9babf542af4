"""A real ``fleet-operator`` SIGKILLed while writing a templated score's entries, restarted.

Each device's entry is its own rendering; the restarted operator renders the same bytes
from the same labels, so it writes only what is missing: every device is written once
in all (no rewrite storm), the device without its label stays listed, and a relabel
after the restart still writes that device's entry.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.kube import KubeCluster
from tests.fixtures.nats import NatsServer
from tests.scores import podman

from ..process import operator_process
from ..rollouts.tap import DesiredTap
from ..sim import Fleet, eventually

# Enough that the first write batch outlasts the test thread noticing it under load
# (at 200, a loaded CI machine saw all of them written before the SIGKILL landed).
DEVICES = [f"dev-{i:04d}" for i in range(1000)]
LABELLED = DEVICES[:-1]
BARE = DEVICES[-1]  # no site label: unrenderable
LIVE = 600.0  # the simulated devices beat once: they must stay reachable throughout
ROUNDS = 3  # Deployments tried, each until one is SIGKILLed mid-write
SCORE = {
    "type": "podman",
    "containers": [{"name": "web", "image": "localhost/busybox:test",
                    "env": {"SITE": "{{ device.labels.site }}", "ID": "{{ device.id }}"}}],
}  # fmt: skip
SEL = {"matchLabels": {"role": "edge"}}


def site_of(device: str) -> str:
    return f"site-{int(device[-4:]) % 7}"


def rendered(fleet: Fleet, name: str) -> dict[str, dict[str, str] | None]:
    return {
        key.partition(".")[0]: podman(entry.value).containers[0].env
        for key, entry in fleet.desired().items()
        if key.endswith(f".{name}")
    }


def right(fleet: Fleet, name: str) -> bool:
    got = rendered(fleet, name)
    return all(got.get(d) == {"SITE": site_of(d), "ID": d} for d in LABELLED)


def listed(kube: KubeCluster, name: str) -> list[Any]:
    return [u["device"] for u in kube.status("ns", name).get("unrenderable") or []]


@pytest.mark.timeout(300)
def test_a_restart_mid_write_writes_each_rendering_once(
    kube: KubeCluster, fleet: Fleet, nats_server: NatsServer, tmp_path: Path
) -> None:
    tap = DesiredTap(fleet.bus, fleet.loop).start()
    try:
        for device in LABELLED:
            fleet.join([device], {"role": "edge", "site": site_of(device)})
        fleet.join([BARE], {"role": "edge"})
        # The SIGKILL fires on the tap's thread at the first write it sees; a loaded machine
        # may still let the writer finish the batch first. Then that round's Deployment is
        # simply complete (the restart adopts it) and the next round tries a new one.
        name = ""
        for attempt in range(ROUNDS):
            name = f"web{attempt}"
            with operator_process(
                nats_server.url, kube.url, tmp_path / f"first-{attempt}.log", liveness=LIVE
            ) as first:
                killed = tap.on_first_write(name, lambda: os.kill(first.pid, signal.SIGKILL))
                kube.create_deployment("ns", name, selector=SEL, score=SCORE)
                assert killed.wait(timeout=60), "the operator never wrote"
                first.wait(timeout=30)
            assert first.returncode == -signal.SIGKILL
            if len(rendered(fleet, name)) < len(LABELLED):
                break  # killed mid-write
        else:
            raise AssertionError(f"all {ROUNDS} rounds wrote every entry before the SIGKILL")

        with operator_process(nats_server.url, kube.url, tmp_path / "second.log", liveness=LIVE):
            eventually(lambda: right(fleet, name), timeout=60, interval=0.3)
            eventually(lambda: listed(kube, name) == [BARE], timeout=60)
        revisions = {k: e.revision for k, e in fleet.desired().items()}

        # a clean restart after convergence: nothing is written at all
        writes_before = len(tap.writes(name))
        with operator_process(nats_server.url, kube.url, tmp_path / "third.log", liveness=LIVE):
            eventually(lambda: listed(kube, name) == [BARE], timeout=60)
            fleet.info([BARE], {"role": "edge", "site": "late"})  # proves it is working
            eventually(lambda: (rendered(fleet, name).get(BARE) or {}).get("SITE") == "late",
                       timeout=60)  # fmt: skip
            eventually(lambda: listed(kube, name) == [], timeout=60)
        assert len(tap.writes(name)) == writes_before + 1  # BARE's, nothing else
        after = {k: e.revision for k, e in fleet.desired().items()
                 if not k.startswith(f"{BARE}.")}  # fmt: skip
        assert after == {k: r for k, r in revisions.items() if not k.startswith(f"{BARE}.")}

        counts = Counter(w.device for w in tap.writes(name))
        assert set(counts) == set(DEVICES)
        twice = {device: n for device, n in counts.items() if n > 1}
        assert twice == {}, f"written more than once: {twice}"
    finally:
        tap.stop()
