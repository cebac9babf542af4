"""The ``kubernetes`` runtime's rules over an in-memory cluster (a fake behind the same
:class:`~fleet.runtime.kube.cluster.port.ClusterClient` port): the order of a pass, what
it writes and what it leaves alone, without an API server."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from fleet.actors.agent.runtimes.kubernetes import KubernetesWorkloads
from fleet.actors.agent.runtimes.port import RetryLater
from fleet.contracts import DeploymentName, DeviceId, KubernetesScore, Phase, convert_score
from fleet.runtime.kube.cluster.port import ApplyRefused, Kind, ObjectEvent, Stream
from fleet.runtime.kube.errors import KubeUnavailable

KINDS = {
    ("v1", "Namespace"): Kind(api_version="v1", kind="Namespace", plural="namespaces",
                              namespaced=False),
    ("v1", "ConfigMap"): Kind(api_version="v1", kind="ConfigMap", plural="configmaps",
                              namespaced=True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): Kind(
        api_version="rbac.authorization.k8s.io/v1", kind="ClusterRole", plural="clusterroles",
        namespaced=False),
}  # fmt: skip


class FakeCluster:
    """Objects in a dict; every write logged; ``away`` makes every call fail as a dead API."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.writes: list[str] = []
        self.away = False
        self.refuse: set[str] = set()

    def _check(self) -> None:
        if self.away:
            raise KubeUnavailable("connection refused")

    def version(self) -> str:
        return "v1.30.0"

    def kind(self, api_version: str, kind: str) -> Kind | None:
        self._check()
        return KINDS.get((api_version, kind))

    def get(self, kind: Kind, name: str, *, namespace: str | None) -> dict[str, Any] | None:
        self._check()
        return copy.deepcopy(self.objects.get((kind.kind, namespace, name)))

    def list(
        self, kind: Kind, *, namespace: str | None, labels: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        self._check()
        return [
            copy.deepcopy(obj)
            for (k, ns, _), obj in self.objects.items()
            if k == kind.kind and (namespace is None or ns == namespace)
            and labels.items() <= obj["metadata"].get("labels", {}).items()
        ]  # fmt: skip

    def apply(
        self, kind: Kind, body: Mapping[str, Any], *, namespace: str | None
    ) -> dict[str, Any]:
        self._check()
        name = body["metadata"]["name"]
        if name in self.refuse:
            raise ApplyRefused(f'{kind.kind} "{name}" is invalid (422)', code=422)
        self.writes.append(f"apply {kind.kind}/{name}")
        obj = copy.deepcopy(dict(body))
        obj["metadata"]["uid"] = f"uid-{len(self.writes)}"
        self.objects[(kind.kind, namespace, name)] = obj
        return copy.deepcopy(obj)

    def delete(self, kind: Kind, name: str, *, namespace: str | None) -> bool:
        self._check()
        self.writes.append(f"delete {kind.kind}/{name}")
        return self.objects.pop((kind.kind, namespace, name), None) is not None

    def watch(
        self,
        kinds: tuple[Kind, ...],
        *,
        labels: Mapping[str, str],
        on_event: Callable[[ObjectEvent], None],
        on_error: Callable[[BaseException], None],
    ) -> Stream:
        raise NotImplementedError


class Said:
    """A :class:`~fleet.actors.agent.runtimes.port.Progress` that records what it is told."""

    def __init__(self) -> None:
        self.phases: list[tuple[Phase, str | None]] = []
        self.touches = 0
        self.phase: Phase | None = None
        self.backoff = 0.0

    def report(self, phase: Phase, message: str | None = None) -> None:
        self.phases.append((phase, message))
        self.phase = phase

    def breaking(self) -> None:
        return None

    def touched(self) -> None:
        self.touches += 1

    def check_later(self, delay: float, *, reason: str) -> None:
        return None


def kube_score(namespace: str, *manifests: dict[str, Any]) -> KubernetesScore:
    score = convert_score(
        {"type": "kubernetes", "namespace": namespace, "manifests": list(manifests)}
    )
    assert isinstance(score, KubernetesScore)
    return score


def cm(name: str, value: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"v": value},
    }


DEVICE = DeviceId("edge-1")


def workload(cluster: FakeCluster, deployment: str = "web") -> Any:
    return KubernetesWorkloads(cluster=cluster, device_id=DEVICE).workload(
        DeploymentName(deployment)
    )


def ensure(cluster: FakeCluster, score: KubernetesScore, revision: int = 1) -> Said:
    said = Said()
    w = workload(cluster)
    assert w.ensure(score, revision=revision, observed=w.observe(), progress=said) is None
    return said


def test_the_namespace_and_its_inventory_go_first_then_the_objects() -> None:
    cluster = FakeCluster()
    said = ensure(cluster, kube_score("shop", cm("a"), cm("b")))
    assert cluster.writes == ["apply Namespace/shop", "apply ConfigMap/a", "apply ConfigMap/b"]
    assert said.phases == [(Phase.STARTING, None)]
    assert said.touches == 1


def test_a_new_revision_of_the_same_score_writes_nothing() -> None:
    cluster = FakeCluster()
    ensure(cluster, kube_score("shop", cm("a")))
    cluster.writes.clear()
    said = ensure(cluster, kube_score("shop", cm("a")), revision=2)
    assert cluster.writes == []
    assert said.phases == []
    assert said.touches == 0


def test_a_cluster_scoped_kind_fails_before_anything_is_written() -> None:
    cluster = FakeCluster()
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "r"}}  # fmt: skip
    said = Said()
    w = workload(cluster)
    with pytest.raises(RetryLater):
        w.ensure(kube_score("shop", cm("a"), role), revision=1, observed=w.observe(), progress=said)
    assert cluster.writes == []
    [(phase, message)] = said.phases
    assert phase is Phase.FAILED
    assert message is not None
    assert message.startswith("manifests[1].kind: ClusterRole is cluster-scoped")


def test_a_refused_apply_names_the_manifest_and_prunes_nothing() -> None:
    cluster = FakeCluster()
    ensure(cluster, kube_score("shop", cm("a"), cm("old")))
    cluster.refuse.add("bad")
    said = Said()
    w = workload(cluster)
    with pytest.raises(RetryLater):
        w.ensure(kube_score("shop", cm("bad")), revision=2, observed=w.observe(), progress=said)
    assert said.phases[-1] == (
        Phase.FAILED,
        "manifests[0] (ConfigMap 'bad'): the cluster refused it: "
        'ConfigMap "bad" is invalid (422)',
    )
    assert ("ConfigMap", "shop", "old") in cluster.objects  # nothing pruned on a failed pass


def test_the_api_away_is_a_temporary_error() -> None:
    cluster = FakeCluster()
    cluster.away = True
    with pytest.raises(KubeUnavailable):
        workload(cluster).observe()


def test_remove_deletes_the_objects_then_the_namespace_and_never_anothers() -> None:
    cluster = FakeCluster()
    ensure(cluster, kube_score("shop", cm("a")))
    other = FakeCluster()
    other.objects = cluster.objects  # the same cluster seen by another deployment's driver
    theirs = workload(other, "other")
    assert theirs.remove(Said()) is False
    cluster.writes.clear()
    said = Said()
    assert workload(cluster).remove(said) is True
    assert cluster.writes == ["delete ConfigMap/a", "delete Namespace/shop"]
    assert said.phases == [(Phase.STOPPING, None)]
    assert workload(cluster).remove(Said()) is False


def _namespace_labels(cluster: FakeCluster, name: str) -> dict[str, str]:
    [ns] = [
        o for (kind, _n, nm), o in cluster.objects.items() if kind == "Namespace" and nm == name
    ]
    return dict(ns["metadata"]["labels"])


def test_an_owned_namespace_enforces_the_baseline_pod_security_level() -> None:
    cluster = FakeCluster()
    ensure(cluster, kube_score("shop", cm("a")))
    labels = _namespace_labels(cluster, "shop")
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "baseline"


def test_a_device_allowing_privileged_labels_its_namespaces_privileged() -> None:
    cluster = FakeCluster()
    w = KubernetesWorkloads(
        cluster=cluster, device_id=DEVICE, allowed=frozenset({"privileged"})
    ).workload(DeploymentName("web"))
    assert (
        w.ensure(kube_score("shop", cm("a")), revision=1, observed=w.observe(), progress=Said())
        is None
    )
    assert _namespace_labels(cluster, "shop")["pod-security.kubernetes.io/enforce"] == "privileged"
