"""A device that runs but whose health checks fail is counted apart in the aggregate
(``unhealthy``); its class stays running and the seven phases are unchanged.

The real operator against the API emulator and a real nats-server, with simulated devices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fleet.actors.operator.app import Operator
from fleet.contracts import BUCKET_DEVICE_STATE, DeploymentName, DeviceId, Phase
from fleet.contracts.keys import desired_state_key
from fleet.contracts.state import Health
from tests.fixtures.kube import KubeCluster

from ..sim import SCORE, Fleet, eventually

SEL = {"matchLabels": {"role": "edge"}}


def report(fleet: Fleet, device: str, health: Health | None) -> None:
    name = DeploymentName("web")
    revision = fleet.desired()[desired_state_key(DeviceId(device), name)].revision
    entry = fleet.entries(device).report(
        deployment=name, phase=Phase.RUNNING, desired_revision=revision, health=health
    )
    assert entry is not None
    fleet.put_all(BUCKET_DEVICE_STATE, [entry])


def aggregate(kube: KubeCluster) -> dict[str, Any]:
    found: dict[str, Any] = kube.status("ns", "web").get("aggregate") or {}
    return found


def test_unhealthy_devices_are_counted_apart(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1", "d2"], {"role": "edge"})
    start_operator(liveness_timeout=600.0)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: {"d1.web", "d2.web"} <= set(fleet.desired()), timeout=30)
    report(fleet, "d1", "healthy")
    report(fleet, "d2", None)
    eventually(lambda: aggregate(kube).get("running") == 2, timeout=30)
    assert "unhealthy" not in aggregate(kube)  # as before health checks

    report(fleet, "d2", "unhealthy")
    eventually(lambda: aggregate(kube).get("unhealthy") == 1, timeout=30)
    assert aggregate(kube) == {
        "targeted": 2, "running": 2, "pending": 0, "failed": 0, "unreachable": 0, "unhealthy": 1
    }  # fmt: skip
    assert kube.ready("ns", "web")["status"] == "True"  # all run: Ready holds

    report(fleet, "d2", "healthy")
    eventually(lambda: aggregate(kube).get("unhealthy") == 0, timeout=30)
