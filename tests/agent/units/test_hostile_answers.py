"""Malformed answers from podman or the Kubernetes API are the runtime's own error (or
read as nothing), never a TypeError, KeyError or AttributeError out of the agent."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from fleet.actors.agent.runtimes.kube_objects import readiness
from fleet.runtime.kube.cluster.client import KubeCluster
from fleet.runtime.kube.cluster.port import Kind
from fleet.runtime.kube.errors import KubeError
from fleet.runtime.podman.adapter import PodmanRuntime
from fleet.runtime.podman.port import ContainerFailed, RuntimeUnavailable, volume_name


class Answer:
    def __init__(self, body: Any, *, status: int = 200) -> None:
        self.body, self.status_code, self.ok = body, status, status < 400
        self.text = repr(body)

    def json(self) -> Any:
        return self.body


def podman_answering(monkeypatch: pytest.MonkeyPatch, *answers: Answer) -> PodmanRuntime:
    runtime = PodmanRuntime(url="unix:///nonexistent/podman.sock")
    queue = list(answers)
    monkeypatch.setattr(runtime, "_call", lambda *a, **k: queue.pop(0))
    return runtime


@pytest.mark.parametrize(
    "body", [{"not": "a list"}, [{"Labels": {}}], [["Name"]], [{"Name": "v", "Labels": [1]}]]
)
def test_a_malformed_volume_list_is_podman_unavailable(
    monkeypatch: pytest.MonkeyPatch, body: Any
) -> None:
    runtime = podman_answering(monkeypatch, Answer(body))
    with pytest.raises(RuntimeUnavailable, match="listing volumes"):
        runtime.list_volumes(labels={"a": "b"})


@pytest.mark.parametrize("body", [[], "text", {"State": []}, {"State": {"Health": [1]}}])
def test_a_malformed_inspect_is_no_health(monkeypatch: pytest.MonkeyPatch, body: Any) -> None:
    runtime = podman_answering(monkeypatch, Answer({}), Answer(body))
    assert runtime.health("abc", timeout=1.0) is None


def test_a_failure_answered_as_a_list_is_still_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = podman_answering(monkeypatch, Answer(["boom"], status=500))
    with pytest.raises(RuntimeUnavailable, match="boom"):
        runtime.list_volumes(labels={})


def test_an_existing_volume_of_another_deployment_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    theirs = {"Name": "v", "Labels": {"fleet.nationtech.io/deployment": "web-data"}}
    runtime = podman_answering(monkeypatch, Answer(None, status=204), Answer(theirs))
    with pytest.raises(ContainerFailed, match="not this deployment's"):
        runtime.ensure_volume("v", labels={"fleet.nationtech.io/deployment": "web"})
    ours = {"Name": "v", "Labels": {"fleet.nationtech.io/deployment": "web"}}
    runtime = podman_answering(monkeypatch, Answer(None, status=204), Answer(ours))
    runtime.ensure_volume("v", labels={"fleet.nationtech.io/deployment": "web"})


def test_volume_names_of_two_deployments_never_collide() -> None:
    assert volume_name("pi", "web", "data-x") != volume_name("pi", "web-data", "x")
    assert volume_name("pi", "a-b", "c") != volume_name("pi", "a", "b-c")
    assert volume_name("pi-01", "cam", "data") == "fleet-pi-01-cam-data"  # adopted as before


def cluster_answering(monkeypatch: pytest.MonkeyPatch, body: dict[str, Any]) -> KubeCluster:
    cluster = object.__new__(KubeCluster)
    cluster._kinds = {}
    cluster._lock = threading.Lock()
    monkeypatch.setattr(cluster, "_json", lambda *a, **k: body)
    return cluster


def test_a_discovery_whose_resources_is_not_a_list_is_a_kube_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = cluster_answering(monkeypatch, {"resources": {"name": "pods"}})
    with pytest.raises(KubeError, match="resources"):
        cluster.kind("v1", "Pod")


def test_a_list_whose_items_is_not_a_list_is_a_kube_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = cluster_answering(monkeypatch, {"items": "everything"})
    kind = Kind(api_version="v1", kind="ConfigMap", plural="configmaps", namespaced=True)
    with pytest.raises(KubeError, match="items"):
        cluster.list(kind, namespace="ns", labels={})


@pytest.mark.parametrize("conditions", [{"type": "Progressing"}, "x", 7])
def test_conditions_that_are_not_a_list_are_read_as_none(conditions: Any) -> None:
    obj = {"metadata": {"generation": 1}, "status": {"conditions": conditions}}
    state, _why = readiness("apps", "Deployment", obj)
    assert state in ("ready", "waiting")
