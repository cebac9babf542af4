"""Finalizer cleanup, restart in the middle of a rollout, orphans, name collisions."""

from __future__ import annotations

from collections.abc import Callable

from fleet.actors.operator.app import Operator
from fleet.contracts import FINALIZER, Phase
from tests.fixtures.kube import KubeCluster

from ..sim import SCORE, Fleet, eventually

SEL = {"matchLabels": {"role": "edge"}}


def test_finalizer_holds_deletion_until_entries_are_gone(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1", "d2"], {"role": "edge"})
    start_operator()
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    kube.create_deployment("ns", "api", selector=SEL, score=SCORE)
    eventually(lambda: len(fleet.desired()) == 4)
    eventually(
        lambda: FINALIZER in (kube.deployment("ns", "web") or {})["metadata"].get("finalizers", [])
    )

    kube.delete_deployment("ns", "web")
    eventually(lambda: kube.deployment("ns", "web") is None)
    assert set(fleet.desired()) == {"d1.api", "d2.api"}  # the other one is untouched


def test_restart_mid_rollout_neither_duplicates_nor_drops(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    devices = [f"d{i}" for i in range(40)]
    fleet.join(devices, {"role": "edge"})
    first = start_operator()
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: len(fleet.desired()) == 40)
    fleet.report(devices[:20], "web", Phase.RUNNING)
    eventually(lambda: kube.aggregate("ns", "web").get("running") == 20)
    before = {k: e.revision for k, e in fleet.desired().items()}
    first.stop()

    # While it is down: more devices join, one leaves the selector, an orphan appears.
    fleet.join(["d40", "d41"], {"role": "edge"})
    fleet.info(["d0"], {"role": "spare"})
    fleet.put_raw("desired-state", "d5.gone", b'{"type":"podman","containers":[]}')
    start_operator()

    expected = {f"{d}.web" for d in devices[1:]} | {"d40.web", "d41.web"}
    eventually(lambda: set(fleet.desired()) == expected)
    after = {k: e.revision for k, e in fleet.desired().items()}
    assert all(after[k] == before[k] for k in expected if k in before)  # nothing rewritten
    eventually(
        lambda: (
            kube.aggregate("ns", "web")
            == {"targeted": 41, "running": 19, "pending": 22, "failed": 0, "unreachable": 0}
        )
    )


def test_same_name_in_two_namespaces_later_one_writes_nothing(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1"], {"role": "edge"})
    start_operator()
    kube.create_deployment("team-a", "web", selector=SEL, score=SCORE)
    eventually(lambda: set(fleet.desired()) == {"d1.web"})
    revision = fleet.desired()["d1.web"].revision
    other = {"type": "podman", "containers": [{"name": "x", "image": "evil:latest"}]}
    kube.create_deployment("team-b", "web", selector=SEL, score=other)

    eventually(lambda: kube.ready("team-b", "web").get("reason") == "NameConflict")
    assert "team-a/web" in kube.ready("team-b", "web")["message"]
    assert kube.aggregate("team-b", "web")["targeted"] == 0
    assert fleet.desired()["d1.web"].revision == revision  # not overwritten
    assert kube.ready("team-a", "web")["reason"] != "NameConflict"

    kube.delete_deployment("team-a", "web")  # the name passes to team-b
    eventually(lambda: b"evil:latest" in getattr(fleet.desired().get("d1.web"), "value", b""))
    eventually(lambda: kube.ready("team-b", "web").get("reason") != "NameConflict")
