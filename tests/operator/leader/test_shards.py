"""Operator shards as real processes (``--shards N --shard-index I --leader-elect``) on the
API emulator and a real nats-server: each Deployment is written by one shard, every
device's resource by one shard, aggregates come out right; a shard SIGKILLed mid-write
is replaced and finishes without a second write; moving from 2 shards to 3 while the two
still run hands over without a double write (checked from every desired-state write).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.actors.operator.shards import shard_of
from fleet.contracts import Phase
from tests.fixtures.kube import KubeCluster
from tests.fixtures.nats import NatsServer

from ..observing.test_metrics_endpoint import SERVING, get
from ..process import operator_process
from ..rollouts.tap import DesiredTap
from ..sim import Fleet, eventually

DEVICES = [f"dev-{i:04d}" for i in range(120)]
LIVE = 600.0  # the simulated devices beat once: they stay reachable throughout
TIMING = "4,3,0.5"
SCORE = {"type": "podman", "containers": [{"name": "web", "image": "localhost/busybox:test"}]}
SEL = {"matchLabels": {"role": "edge"}}


def _names() -> list[str]:
    """Six names: at least one on each shard of 2 and of 3."""
    pool = [f"app-{i}" for i in range(40)]
    picked: list[str] = []
    for count in (2, 3):
        for index in range(count):
            picked.append(next(n for n in pool if shard_of(n, count) == index and n not in picked))
    return [*picked, next(n for n in pool if n not in picked)]


NAMES = _names()


@contextlib.contextmanager
def shard(
    nats: NatsServer, kube: KubeCluster, tmp_path: Path, count: int, index: int, *, who: str = ""
) -> Iterator[subprocess.Popen[bytes]]:
    name = f"op-{count}-{index}{who}"
    extra = ["--leader-elect", "--lease-identity", name, "--lease-namespace", "default",
             "--lease-timing", TIMING, "--metrics-address", "127.0.0.1:0",
             "--shards", str(count), "--shard-index", str(index)]  # fmt: skip
    with operator_process(nats.url, kube.url, tmp_path / f"{name}.log", liveness=LIVE,
                          extra=extra) as proc:  # fmt: skip
        yield proc


def log(tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def puts(tap: DesiredTap, name: str) -> Counter[str]:
    """Per device: how many times ``name``'s entry was put (a double writer puts twice)."""
    return Counter(w.device for w in tap.writes(name) if w.value is not None)


def converged(kube: KubeCluster, names: list[str], running: bool) -> bool:
    for name in names:
        aggregate = kube.aggregate("ns", name)
        if aggregate.get("targeted") != len(DEVICES):
            return False
        if running and aggregate.get("running") != len(DEVICES):
            return False
    return True


def create(kube: KubeCluster, names: list[str]) -> None:
    for name in names:
        kube.create_deployment("ns", name, selector=SEL, score=SCORE)


@pytest.mark.timeout(300)
def test_two_shards_split_the_work_and_three_take_it_over_without_a_double_write(
    kube: KubeCluster, fleet: Fleet, nats_server: NatsServer, tmp_path: Path
) -> None:
    tap = DesiredTap(fleet.bus, fleet.loop).start()
    try:
        fleet.join(DEVICES, {"role": "edge"})
        first = NAMES[:4]
        create(kube, first)
        with (
            shard(nats_server, kube, tmp_path, 2, 0) as a0,
            shard(nats_server, kube, tmp_path, 2, 1) as a1,
        ):
            eventually(lambda: all(len(puts(tap, n)) == len(DEVICES) for n in first),
                       timeout=120, interval=0.3)  # fmt: skip
            eventually(lambda: converged(kube, first, running=False), timeout=120, interval=0.3)
            for name in first:
                fleet.report(DEVICES, name, Phase.RUNNING)
            eventually(lambda: converged(kube, first, running=True), timeout=120, interval=0.3)
            # every device's resource, each written by its own shard
            eventually(lambda: len(kube.devices()) == len(DEVICES), timeout=60)
            assert "shard 0 of 2" in log(tmp_path, "op-2-0")
            assert "shard 1 of 2" in log(tmp_path, "op-2-1")
            # a rolling update to 3 shards starts while both old shards still lead
            with (
                shard(nats_server, kube, tmp_path, 3, 0) as b0,
                shard(nats_server, kube, tmp_path, 3, 1) as b1,
                shard(nats_server, kube, tmp_path, 3, 2) as b2,
            ):
                # shard 2's Lease is new: it waits at the shard map for the old count,
                # Ready all the while (a rolling update must not wait on it)
                eventually(lambda: "waiting to write as one of 3 shards" in log(tmp_path, "op-3-2"),
                           timeout=60)  # fmt: skip
                port = SERVING.search(log(tmp_path, "op-3-2").encode())
                assert port is not None
                assert get(f"http://127.0.0.1:{int(port.group(1))}/readyz")[0] == 200
                added = NAMES[4]
                create(kube, [added])  # the old shards still write
                eventually(lambda: len(puts(tap, added)) == len(DEVICES), timeout=120,
                           interval=0.3)  # fmt: skip
                for old in (a0, a1):
                    old.send_signal(signal.SIGTERM)
                    assert old.wait(timeout=60) == 0
                last = NAMES[5]
                create(kube, [last])  # written by the new shards
                eventually(lambda: len(puts(tap, last)) == len(DEVICES), timeout=120,
                           interval=0.3)  # fmt: skip
                fleet.report(DEVICES, added, Phase.RUNNING)
                fleet.report(DEVICES, last, Phase.RUNNING)
                eventually(lambda: converged(kube, NAMES, running=True), timeout=120,
                           interval=0.3)  # fmt: skip
                for proc in (b0, b1, b2):
                    assert proc.poll() is None
        for name in NAMES:
            twice = {d: n for d, n in puts(tap, name).items() if n != 1}
            assert not twice, f"{name}: entries put more than once: {dict(list(twice.items())[:5])}"
    finally:
        tap.stop()


@pytest.mark.timeout(300)
def test_a_shard_sigkilled_mid_write_is_replaced_and_finishes_alone(
    kube: KubeCluster, fleet: Fleet, nats_server: NatsServer, tmp_path: Path
) -> None:
    tap = DesiredTap(fleet.bus, fleet.loop).start()
    try:
        fleet.join(DEVICES, {"role": "edge"})
        victim = next(n for n in NAMES if shard_of(n, 2) == 1)
        with (
            shard(nats_server, kube, tmp_path, 2, 0) as s0,
            shard(nats_server, kube, tmp_path, 2, 1) as s1,
            shard(nats_server, kube, tmp_path, 2, 1, who="-standby") as standby,
        ):
            eventually(lambda: "waiting to lead" in log(tmp_path, "op-2-1-standby")
                       or "waiting to lead" in log(tmp_path, "op-2-1"), timeout=60)  # fmt: skip
            killed: list[Any] = []

            def kill_the_writer() -> None:
                # whichever of the two candidates for shard 1 leads is killed
                for proc, name in ((s1, "op-2-1"), (standby, "op-2-1-standby")):
                    if "shard 1 of 2" in log(tmp_path, name):
                        os.kill(proc.pid, signal.SIGKILL)
                        killed.append(proc)
                        return

            fired = tap.on_first_write(victim, kill_the_writer)
            create(kube, NAMES[:4])
            assert fired.wait(timeout=120), "shard 1 never wrote"
            assert killed, "no leader of shard 1 was found to kill"
            assert killed[0].wait(timeout=30) == -signal.SIGKILL
            eventually(lambda: converged(kube, NAMES[:4], running=False), timeout=120,
                       interval=0.3)  # fmt: skip
            assert s0.poll() is None
        # the replacement read what the killed one wrote and wrote only what was missing
        for name in NAMES[:4]:
            counts = puts(tap, name)
            assert set(counts) == set(DEVICES)
            assert max(counts.values()) == 1, f"{name}: an entry put twice"
    finally:
        tap.stop()
