"""The ``kubernetes`` runtime through a real agent, a real nats-server and the API
emulator: what the conformance kit does not cover (bad input the cluster decides, drift
by edit, prune, readiness, removal of the namespace)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import yaml

from fleet.actors.agent.runtimes.kube_objects import HASH_LABEL, REVISION_LABEL, owner_labels
from fleet.runtime.kube.cluster.port import NAMESPACES, Kind
from tests.agent.conformance.adapters import DEPLOYMENTS, KubernetesAdapter, web_deployment
from tests.agent.conformance.kit import TIMEOUT, Bench, is_phase
from tests.deploy.conftest import DEPLOY

CONFIGMAPS = Kind(api_version="v1", kind="ConfigMap", plural="configmaps", namespaced=True)


def score(namespace: str, *manifests: dict[str, Any]) -> dict[str, Any]:
    return {"type": "kubernetes", "namespace": namespace, "manifests": list(manifests)}


def config_map(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def wait_for(check: Callable[[], bool], *, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never held")
        time.sleep(0.05)


def names(adapter: KubernetesAdapter, kind: Kind, namespace: str) -> set[str]:
    return {
        o["metadata"]["name"] for o in adapter.cluster.list(kind, namespace=namespace, labels={})
    }


def running(bench: Bench, deployment: str, value: dict[str, Any]) -> int:
    revision = bench.put(deployment, value)
    bench.wait_report(deployment, is_phase("Running", revision), what=f"{deployment} Running")
    return revision


def failed(bench: Bench, deployment: str, value: dict[str, Any]) -> str:
    revision = bench.put(deployment, value)
    state = bench.wait_report(deployment, is_phase("Failed", revision), what=f"{deployment} Failed")
    assert state.message is not None
    return state.message


def test_objects_carry_the_marks_and_the_namespace_is_fleets(
    bench: Bench, kube_adapter: KubernetesAdapter
) -> None:
    bench.start_agent()
    revision = running(bench, "web", score("shop", web_deployment(), config_map("conf", a="1")))
    [deploy] = kube_adapter.cluster.list(DEPLOYMENTS, namespace="shop", labels={})
    labels = deploy["metadata"]["labels"]
    assert labels.items() >= owner_labels(bench.device, "web").items()
    assert labels[REVISION_LABEL] == str(revision)
    assert labels[HASH_LABEL]
    assert labels["app"] == "web"  # the manifest's own labels kept
    [manager] = {f["manager"] for f in deploy["metadata"]["managedFields"]}
    assert manager == "fleet-agent"
    ns = kube_adapter.cluster.get(NAMESPACES, "shop", namespace=None)
    assert ns is not None
    assert ns["metadata"]["labels"].items() >= owner_labels(bench.device, "web").items()


def test_bad_input_fails_naming_the_field_and_leaves_the_neighbours_running(
    bench: Bench, kube_adapter: KubernetesAdapter
) -> None:
    bench.start_agent()
    running(bench, "good", score("good-ns", web_deployment("good")))
    good = kube_adapter.units(bench.device, "good")
    # a cluster-scoped kind
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "reader"}}  # fmt: skip
    message = failed(bench, "bad", score("bad-ns", config_map("ok"), role))
    assert "manifests[1].kind" in message, message
    assert "cluster-scoped" in message, message
    assert names(kube_adapter, CONFIGMAPS, "bad-ns") == set()  # nothing applied at all
    # a kind the cluster does not serve
    crd = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    message = failed(bench, "bad", score("bad-ns", crd))
    assert "manifests[0].kind" in message, message
    # an apply the API refuses: its message, naming the manifest
    broken = web_deployment("broken")
    broken["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    message = failed(bench, "bad", score("bad-ns", config_map("ok"), broken))
    assert "manifests[1]" in message, message
    assert "selector" in message, message
    assert len(message) < 600, message
    # a namespace that is not fleet's
    kube_adapter.cluster.apply(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "theirs"}},
        namespace=None,
    )  # fmt: skip
    message = failed(bench, "bad2", score("theirs", config_map("x")))
    assert "`namespace`" in message, message
    assert names(kube_adapter, CONFIGMAPS, "theirs") == set()
    # the neighbour never moved
    assert kube_adapter.units(bench.device, "good") == good
    state = bench.state("good")
    assert state is not None
    assert state.phase.value == "Running"


def test_a_workload_that_never_gets_ready_is_failed_naming_it(
    bench: Bench, kube_adapter: KubernetesAdapter
) -> None:
    kube_adapter.controller.fail("slow", "web")
    bench.start_agent()
    message = failed(bench, "web", score("slow", web_deployment()))
    assert "manifests[0] (Deployment 'web')" in message, message
    assert "ProgressDeadlineExceeded" in message, message


def test_an_object_edited_or_deleted_by_hand_is_applied_again(
    bench: Bench, kube_adapter: KubernetesAdapter
) -> None:
    bench.start_agent()
    running(bench, "web", score("shop", web_deployment(), config_map("conf", mode="fast")))
    cluster = kube_adapter.cluster
    # kubectl edit: another manager changes a field the agent applied
    body = config_map("conf", mode="slow")
    body["metadata"]["namespace"] = "shop"
    person = type(cluster)(cluster.api_client, field_manager="kubectl-edit")
    assert person.apply(CONFIGMAPS, body, namespace="shop")["data"]["mode"] == "slow"

    def mode() -> str | None:
        found = cluster.get(CONFIGMAPS, "conf", namespace="shop")
        return None if found is None else found.get("data", {}).get("mode")

    wait_for(lambda: mode() == "fast", what="the edited ConfigMap applied again")
    # kubectl delete
    assert cluster.delete(CONFIGMAPS, "conf", namespace="shop")
    wait_for(lambda: mode() == "fast", what="the deleted ConfigMap applied again")


def test_objects_the_score_no_longer_lists_are_pruned_and_remove_takes_the_namespace(
    bench: Bench, kube_adapter: KubernetesAdapter
) -> None:
    bench.start_agent()
    running(bench, "web", score("shop", web_deployment(), config_map("a"), config_map("b")))
    kept = kube_adapter.cluster.get(CONFIGMAPS, "a", namespace="shop")
    assert kept is not None
    running(bench, "web", score("shop", web_deployment(), config_map("a")))
    assert names(kube_adapter, CONFIGMAPS, "shop") == {"a"}
    again = kube_adapter.cluster.get(CONFIGMAPS, "a", namespace="shop")
    assert again is not None
    assert again["metadata"]["uid"] == kept["metadata"]["uid"]  # adopted, not re-created
    # a new namespace: everything moves, the old namespace goes
    running(bench, "web", score("shop2", web_deployment()))
    assert kube_adapter.cluster.get(NAMESPACES, "shop", namespace=None) is None
    assert names(kube_adapter, DEPLOYMENTS, "shop2") == {"web"}
    revision = bench.delete("web")
    bench.wait_report("web", is_phase("Removed", revision), what="Removed")
    assert kube_adapter.cluster.get(NAMESPACES, "shop2", namespace=None) is None
    assert names(kube_adapter, DEPLOYMENTS, "shop2") == set()


def test_the_shipped_example_runs(bench: Bench, kube_adapter: KubernetesAdapter) -> None:
    example = yaml.safe_load((DEPLOY / "examples" / "kubernetes-app.yaml").read_text())
    bench.start_agent()
    running(bench, "kubernetes-app", example["spec"]["score"])
    assert names(kube_adapter, DEPLOYMENTS, "shop") == {"web"}
    assert names(kube_adapter, CONFIGMAPS, "shop") == {"web-config"}
