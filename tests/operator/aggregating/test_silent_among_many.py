"""A device that stops beating is unreachable within the liveness timeout plus 5 s while
many others beat on (and not before the timeout: the operator reads most beats without
telling the device actors, fleet/actors/operator/liveness_book.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fleet.actors.operator.app import Operator
from tests.fixtures.kube import KubeCluster

from ..sim import SCORE, Fleet, eventually

SEL = {"matchLabels": {"role": "edge"}}
TIMEOUT = 3.0  # the liveness timeout of this test's operator
BOUND = TIMEOUT + 5.0  # the spec: unreachable within the timeout plus 5 s


def test_a_silent_device_among_many_beating_is_unreachable_in_time(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    devices = [f"d{i:03d}" for i in range(300)]
    silent, beating = devices[0], devices[1:]
    fleet.join(devices, {"role": "edge"})
    start_operator(liveness_timeout=TIMEOUT)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    stop = threading.Event()
    last_silent_beat = [0.0]

    def beat_forever(names: list[str]) -> None:  # every 0.5 s, until told to stop
        while not stop.is_set():
            fleet.beat(names)
            stop.wait(0.5)

    others = threading.Thread(target=beat_forever, args=(beating,), daemon=True)
    others.start()
    try:
        # all online: targeted, none unreachable (no report yet: pending)
        eventually(lambda: kube.aggregate("ns", "web").get("pending") == len(devices), timeout=60)
        for _ in range(3):  # the silent one beats a few times, then stops
            fleet.beat([silent])
            last_silent_beat[0] = time.time()
            time.sleep(0.5)
        eventually(lambda: kube.aggregate("ns", "web").get("unreachable") == 1,
                   timeout=BOUND + 30, interval=0.1)  # fmt: skip
        detected = time.time() - last_silent_beat[0]
        aggregate = kube.aggregate("ns", "web")
        assert aggregate["pending"] == len(beating)  # the others stayed online
        assert detected <= BOUND, f"unreachable {detected:.1f} s after its last beat"
        assert detected >= TIMEOUT - 0.5, f"unreachable after {detected:.1f} s: too early"
        fleet.beat([silent])  # and it comes back at its next beat
        eventually(lambda: kube.aggregate("ns", "web").get("unreachable") == 0, timeout=30)
    finally:
        stop.set()
        others.join(timeout=30)
