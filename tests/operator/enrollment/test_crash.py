"""SIGKILL of ``fleet-operator`` in the middle of approvals: after a restart every
device ends approved exactly once, and the token's uses add up."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fleet.cli.fleetctl import enrolling
from fleet.devtools.tls import LocalCa
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.kube.client import KubeClient
from fleet.runtime.nats import subjects
from tests.fixtures.kube import KubeCluster

from .world import SimDevice, World

pytestmark = pytest.mark.timeout(120)
DEVICES = 24


def start_operator(world: World, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleet.cli.operator", "--nats-url", world.server.url,
             "--nats-ca", str(world.ca.ca_cert), "--auth-dir", str(world.auth_dir),
             "--kube-url", world.kube.url, "--liveness-timeout", "5"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while b"enrollment on" not in log.read_bytes():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return proc


def test_sigkill_mid_approval_ends_approved_once(
    tmp_path: Path, local_ca: LocalCa, kube: KubeCluster, event_loop_thread: EventLoopThread
) -> None:
    world = World(directory=tmp_path, ca=local_ca, kube=kube, loop=event_loop_thread)
    world.server.start()
    log = tmp_path / "operator.log"
    proc = start_operator(world, log)
    try:
        token, _ = enrolling.create_token(
            KubeClient(kube.api_client), ttl=600, uses=DEVICES, labels={}
        )
        ident = token.split(".")[0]
        devices = [SimDevice(f"k-{i}") for i in range(DEVICES)]
        approved: dict[str, str] = {}
        lock = threading.Lock()

        def keep_asking(device: SimDevice) -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                reply = world.ask(subjects.ENROLL, device.enrollment(token=token), timeout=2)
                if reply is not None and reply.status == "approved":
                    with lock:
                        approved[device.device_id] = reply.status
                    return
                time.sleep(0.1)

        with concurrent.futures.ThreadPoolExecutor(DEVICES) as pool:
            futures = [pool.submit(keep_asking, d) for d in devices]
            deadline = time.monotonic() + 30
            while True:  # kill it once some, not all, approvals are done
                used = (world.get("bootstraptokens", ident) or {}).get("status", {})
                if len(used.get("usedBy") or []) >= 2:
                    break
                assert time.monotonic() < deadline
                time.sleep(0.01)
            proc.kill()
            proc.wait(timeout=10)
            proc = start_operator(world, log)
            for future in futures:
                future.result(timeout=90)
        assert sorted(approved) == sorted(d.device_id for d in devices)
        stored = world.get("bootstraptokens", ident)
        assert stored is not None
        used_by = stored["status"]["usedBy"]
        assert sorted(used_by) == sorted(d.device_id for d in devices)  # once each
        assert stored["spec"]["usesLeft"] == 0
        for device in devices:
            status = world.request(device.device_id)["status"]
            assert (status["phase"], status["approvedBy"]) == ("Approved", f"token {ident}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        finally:
            world.server.stop()
