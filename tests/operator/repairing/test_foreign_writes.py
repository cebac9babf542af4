"""The operator does not read back its own writes, yet repairs what another writer did.

It reads desired-state once at start and then trusts its own writes (watching the bucket
would deliver every write straight back: a quarter of its work at fleet scale). A write by
anyone else shows in the device's report, whose ``desired_revision`` is newer than any the
operator wrote: it then re-reads that entry and puts it right.
"""

from __future__ import annotations

from collections.abc import Callable

from fleet.actors.operator.app import Operator
from fleet.contracts import BUCKET_DESIRED_STATE, Phase
from tests.fixtures.kube import KubeCluster

from ..sim import SCORE, Fleet, eventually

SEL = {"matchLabels": {"role": "edge"}}
EVIL = b'{"type":"podman","containers":[{"name":"x","image":"evil:latest"}]}'


def consumers_on_desired_state(fleet: Fleet) -> int:
    info = fleet.run(fleet.bus.js.stream_info(f"KV_{BUCKET_DESIRED_STATE}"))
    return int(info.state.consumer_count)


def test_operator_keeps_no_watch_on_desired_state(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1", "d2"], {"role": "edge"})
    start_operator()
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: len(fleet.desired()) == 2)
    fleet.report(["d1", "d2"], "web", Phase.RUNNING)
    eventually(lambda: kube.aggregate("ns", "web").get("running") == 2)
    assert consumers_on_desired_state(fleet) == 0


def test_entry_overwritten_by_another_writer_is_restored(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1", "d2"], {"role": "edge"})
    start_operator()
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: len(fleet.desired()) == 2)
    good = fleet.desired()["d1.web"].value
    fleet.report(["d1", "d2"], "web", Phase.RUNNING)
    eventually(lambda: kube.aggregate("ns", "web").get("running") == 2)

    fleet.put_raw(BUCKET_DESIRED_STATE, "d1.web", EVIL)
    foreign = fleet.desired()["d1.web"].revision
    fleet.report(["d1"], "web", Phase.RUNNING, revision=foreign)  # d1 applied it

    eventually(lambda: fleet.desired()["d1.web"].revision > foreign)
    assert fleet.desired()["d1.web"].value == good
    # Running the other writer's content is not Running this Deployment.
    eventually(lambda: kube.aggregate("ns", "web").get("running") == 1)
    fleet.report(["d1"], "web", Phase.RUNNING)  # d1 applies the restored entry
    eventually(lambda: kube.aggregate("ns", "web").get("running") == 2)


def test_entry_deleted_by_another_writer_is_written_again(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1", "d2"], {"role": "edge"})
    start_operator()
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: len(fleet.desired()) == 2)
    fleet.report(["d1", "d2"], "web", Phase.RUNNING)
    eventually(lambda: kube.aggregate("ns", "web").get("running") == 2)

    fleet.run(fleet.bus.delete(BUCKET_DESIRED_STATE, "d2.web"))
    marker = fleet.run(fleet.bus.last_revision(BUCKET_DESIRED_STATE, "d2.web"))
    fleet.report(["d2"], "web", Phase.REMOVED, revision=marker)  # as an agent reports it

    eventually(lambda: "d2.web" in fleet.desired())
    assert fleet.desired()["d2.web"].revision > marker
    fleet.report(["d2"], "web", Phase.RUNNING)
    eventually(lambda: kube.aggregate("ns", "web").get("running") == 2)


def test_entry_for_an_untargeted_device_is_removed(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1"], {"role": "edge"})
    fleet.join(["d9"], {"role": "spare"})
    start_operator()
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: set(fleet.desired()) == {"d1.web"})

    fleet.put_raw(BUCKET_DESIRED_STATE, "d9.web", EVIL)
    fleet.report(["d9"], "web", Phase.RUNNING)  # d9 runs what it was handed
    eventually(lambda: set(fleet.desired()) == {"d1.web"})
    assert kube.aggregate("ns", "web").get("targeted") == 1
