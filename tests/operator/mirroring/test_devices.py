"""Device resources mirror device-info, liveness and each deployment's phase."""

from __future__ import annotations

from collections.abc import Callable

from fleet.actors.operator.app import Operator
from fleet.contracts import Phase
from tests.fixtures.kube import KubeCluster

from ..sim import SCORE, Fleet, eventually


def test_device_resource_shows_info_liveness_and_phases(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["edge-1"], {"role": "edge", "site": "paris"})
    fleet.join(["Edge_2"], {"role": "edge"})
    start_operator()
    kube.create_deployment("ns", "web", selector={"matchLabels": {"role": "edge"}}, score=SCORE)
    eventually(lambda: len(fleet.desired()) == 2)
    fleet.report(["edge-1"], "web", Phase.RUNNING)

    def shown() -> bool:
        dev = kube.devices().get("edge-1")
        assert dev is not None
        status = dev.get("status") or {}
        assert status.get("online") is True
        assert status["labels"] == {"role": "edge", "site": "paris"}
        assert dev["metadata"]["labels"] == {"role": "edge", "site": "paris"}
        assert status["agentVersion"] == "0.1.0"
        assert status["inventory"]["arch"] == "x86_64"
        assert status["lastHeartbeat"]
        assert status["deployments"][0]["deployment"] == "web"
        assert status["deployments"][0]["phase"] == "Running"
        return True

    eventually(shown)
    devices = kube.devices()
    other = [d for name, d in devices.items() if name != "edge-1"]
    assert [d["spec"]["deviceId"] for d in other] == ["Edge_2"]
