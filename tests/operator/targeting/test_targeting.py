"""Targeting: a Deployment's selector decides which devices get its desired entry."""

from __future__ import annotations

from collections.abc import Callable

from fleet.actors.operator.app import Operator
from fleet.contracts import Phase
from tests.fixtures.kube import KubeCluster
from tests.scores import podman

from ..sim import SCORE, Fleet, eventually


def keys(fleet: Fleet) -> set[str]:
    return set(fleet.desired())


def test_matching_devices_get_entries_and_aggregate(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1", "d2"], {"site": "paris"})
    fleet.join(["d3"], {"site": "oslo"})
    start_operator()
    kube.create_deployment("ns", "web", selector={"matchLabels": {"site": "paris"}}, score=SCORE)

    eventually(lambda: keys(fleet) == {"d1.web", "d2.web"})
    entry = fleet.desired()["d1.web"]
    assert podman(entry.value).containers[0].image == "localhost/busybox:test"
    eventually(
        lambda: (
            kube.aggregate("ns", "web")
            == {"targeted": 2, "running": 0, "pending": 2, "failed": 0, "unreachable": 0}
        )
    )

    fleet.report(["d1", "d2"], "web", Phase.RUNNING)
    eventually(lambda: kube.aggregate("ns", "web")["running"] == 2)
    assert kube.ready("ns", "web")["status"] == "True"
    assert kube.status("ns", "web")["observedGeneration"] == 1


def test_relabel_retargets_both_ways(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1", "d2"], {"site": "paris"})
    start_operator()
    kube.create_deployment("ns", "web", selector={"matchLabels": {"site": "paris"}}, score=SCORE)
    eventually(lambda: keys(fleet) == {"d1.web", "d2.web"})

    fleet.info(["d2"], {"site": "oslo"})
    eventually(lambda: keys(fleet) == {"d1.web"})
    fleet.info(["d3"], {"site": "paris"})
    fleet.beat(["d3"])
    fleet.info(["d2"], {"site": "paris"})
    eventually(lambda: keys(fleet) == {"d1.web", "d2.web", "d3.web"})
    eventually(lambda: kube.aggregate("ns", "web")["targeted"] == 3)
