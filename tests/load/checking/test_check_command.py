"""``python -m loadtest.check`` against a real nats-server and the Kubernetes API emulator.

The buckets are written as devices would; the Deployment's status as an operator would.
An aggregate that disagrees with what a device reported must print FAIL and exit 1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fleet.actors.agent.reporting import DeviceEntries
from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeviceId,
    Phase,
    desired_state_key,
)
from fleet.devtools.simprofile import SIMULATED_INVENTORY
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from tests.fixtures.kube import GROUP, VERSION, KubeCluster
from tests.fixtures.nats import NatsServer

REPO = Path(__file__).resolve().parents[3]
NS = "fleet-load"
WEB = DeploymentName("web")


def write_fleet(loop: EventLoopThread, bus: Bus, phases: dict[str, Phase]) -> None:
    """Each device: info (site=lab), a fresh heartbeat, a desired entry and a report."""

    async def write() -> None:
        for device, phase in phases.items():
            entries = DeviceEntries(device_id=DeviceId(device), instance_id=None)
            info = entries.info(labels={"site": "lab"}, inventory=SIMULATED_INVENTORY)
            await bus.put(BUCKET_DEVICE_INFO, *info)
            await bus.put(BUCKET_DEVICE_HEARTBEAT, *entries.heartbeat())
            key = desired_state_key(entries.device_id, WEB)
            revision = await bus.put(BUCKET_DESIRED_STATE, key, b'{"type":"podman"}')
            report = entries.report(deployment=WEB, phase=phase, desired_revision=revision)
            assert report is not None
            await bus.put(BUCKET_DEVICE_STATE, *report)

    loop.run(write(), timeout=10)


def set_aggregate(kube: KubeCluster, **counts: int) -> None:
    kube.custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        NS,
        "deployments",
        "web",
        {"status": {"observedGeneration": 1, "aggregate": counts}},
    )


def run_check(nats_url: str, kube_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.check",
            "--nats-url",
            nats_url,
            "--kube-url",
            kube_url,
            "--namespace",
            NS,
            "--liveness-timeout",
            "60",
            "--settle",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


def test_check_passes_when_the_aggregate_matches_the_devices(
    nats_server: NatsServer, bus: Bus, event_loop_thread: EventLoopThread, kube: KubeCluster
) -> None:
    write_fleet(event_loop_thread, bus, {"d1": Phase.RUNNING, "d2": Phase.FAILED})
    kube.create_deployment(
        NS,
        "web",
        selector={"matchLabels": {"site": "lab"}},
        score={"type": "podman", "containers": [{"name": "a", "image": "b"}]},
    )
    set_aggregate(kube, targeted=2, running=1, pending=0, failed=1, unreachable=0)

    done = run_check(nats_server.url, kube.url)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("PASS")


def test_a_device_reporting_failed_while_the_aggregate_says_running_fails(
    nats_server: NatsServer, bus: Bus, event_loop_thread: EventLoopThread, kube: KubeCluster
) -> None:
    write_fleet(event_loop_thread, bus, {"d1": Phase.RUNNING, "d2": Phase.FAILED})
    kube.create_deployment(
        NS,
        "web",
        selector={"matchLabels": {"site": "lab"}},
        score={"type": "podman", "containers": [{"name": "a", "image": "b"}]},
    )
    set_aggregate(kube, targeted=2, running=2, pending=0, failed=0, unreachable=0)  # the lie

    done = run_check(nats_server.url, kube.url)

    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("FAIL")
    assert "web: aggregate.failed is 0, devices say 1 (e.g. d2)" in done.stdout
