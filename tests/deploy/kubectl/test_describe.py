"""``kubectl describe`` shows an object's Events: the field selectors it sends are honoured."""

from __future__ import annotations

import datetime
import re
from typing import Any
from urllib.parse import quote

import kubernetes
import pytest

from fleet.runtime.kube.client import MERGE_PATCH
from tests.fixtures.kube import GROUP, VERSION, KubeCluster

from .conftest import Kubectl, http

pytestmark = pytest.mark.timeout(120)
SCORE = {"type": "podman", "containers": []}


def stamp(*, minutes_ago: int) -> str:
    now = datetime.datetime.now(tz=datetime.UTC)
    return (now - datetime.timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def post_event(
    kube: KubeCluster, involved: dict[str, Any], *, reason: str, message: str, kind: str = "Normal"
) -> str:
    """A core/v1 Event posted through the kubernetes client, as the operator posts one."""
    core = kubernetes.client.CoreV1Api(kube.api_client)
    body: Any = {  # the client takes the JSON as it is
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{involved['name']}.", "namespace": involved["namespace"]},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": "fleet-operator"},
        "count": 1,
        "firstTimestamp": stamp(minutes_ago=5),
        "lastTimestamp": stamp(minutes_ago=5),
    }
    created = core.create_namespaced_event(involved["namespace"], body)
    name = created.metadata.name
    assert isinstance(name, str)
    assert name.startswith(f"{involved['name']}.")  # generateName honoured, the object returned
    return name


def involved(kube: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.deployment(namespace, name)
    assert obj is not None
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Deployment",
        "name": name,
        "namespace": namespace,
        "uid": obj["metadata"]["uid"],
    }


def test_describe_shows_the_objects_own_events(kube: KubeCluster, kubectl: Kubectl) -> None:
    kube.create_deployment("default", "hello-web", selector={}, score=SCORE)
    kube.create_deployment("default", "other", selector={}, score=SCORE)
    kube.create_deployment("shop", "hello-web", selector={}, score=SCORE)
    mine = involved(kube, "default", "hello-web")
    ready = post_event(kube, mine, reason="Ready", message="every targeted device runs it")
    post_event(kube, mine, reason="DevicesFailed", message="2 of 3 devices failed", kind="Warning")
    post_event(kube, involved(kube, "default", "other"), reason="Ready", message="not this one")
    post_event(
        kube, involved(kube, "shop", "hello-web"), reason="Ready", message="a namesake elsewhere"
    )
    core = kubernetes.client.CoreV1Api(kube.api_client)
    core.patch_namespaced_event(
        ready,
        "default",
        {"count": 3, "lastTimestamp": stamp(minutes_ago=0)},
        _content_type=MERGE_PATCH,
    )

    out = kubectl.ok("describe", "fleetdep", "hello-web")
    events = out[out.index("Events:") :]
    assert "every targeted device runs it" in events
    assert re.search(
        r"\d+s \(x3 over 5m\d*s?\)", events
    )  # the patched count, as the recorder repeats one
    assert "Warning  DevicesFailed" in events
    assert "not this one" not in events
    assert "a namesake elsewhere" not in events
    assert "Name:         hello-web" in out

    listed = kubectl.ok("get", "events", "-n", "default")
    assert "deployment/hello-web" in listed
    assert "deployment/other" in listed


def test_event_field_selectors_as_describe_sends_them(kube: KubeCluster) -> None:
    kube.create_deployment("default", "hello-web", selector={}, score=SCORE)
    mine = involved(kube, "default", "hello-web")
    post_event(kube, mine, reason="Ready", message="mine")
    post_event(kube, {**mine, "uid": "another-uid"}, reason="Ready", message="a deleted one's")
    selector = ",".join(
        f"involvedObject.{k}={mine[k]}" for k in ("name", "namespace", "kind", "uid")
    )
    code, body = http(
        kube, "GET", f"/api/v1/namespaces/default/events?fieldSelector={quote(selector)}"
    )
    assert code == 200
    assert body["kind"] == "EventList"
    assert [e["message"] for e in body["items"]] == ["mine"]
    code, body = http(kube, "GET", "/api/v1/events?fieldSelector=reason%3DReady")
    assert sorted(e["message"] for e in body["items"]) == ["a deleted one's", "mine"]
