"""What the emulator answers to bad requests: a 400/415/422 ``Status`` naming the fault, as a
real API server does, never a 500, a traceback or a half-applied selector."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from tests.fixtures.kube import GROUP, VERSION, KubeCluster

from .conftest import EXAMPLE, Kubectl, http

pytestmark = pytest.mark.timeout(120)
DEPLOYMENTS = f"/apis/{GROUP}/{VERSION}/namespaces/default/deployments"
SCORE = {"type": "podman", "containers": []}


def assert_status(code: int, body: dict[str, Any], expected: int, reason: str, *words: str) -> None:
    assert code == expected, body
    assert (body["kind"], body["apiVersion"], body["status"]) == ("Status", "v1", "Failure")
    assert (body["code"], body["reason"]) == (expected, reason)
    for word in words:
        assert word in body["message"], body["message"]
    assert "traceback" not in str(body).lower()


@pytest.mark.parametrize(
    ("selector", "words"),
    [
        ("site in (lab", ["site in (lab", "expected: ',' or ')'"]),
        ("site lab", ["site lab", "found 'lab'"]),
        ("=lab", ["=lab"]),
        ("site=a b", ["found 'b'"]),
        ("site=" + "x" * 64, ["values[0][site]", "Invalid value"]),
        ("bad key!x=1", ["bad key!x=1"]),
    ],
)
def test_a_malformed_label_selector_is_a_400_naming_it(
    kube: KubeCluster, selector: str, words: list[str]
) -> None:
    for watch in ("", "&watch=true"):
        code, body = http(kube, "GET", f"{DEPLOYMENTS}?labelSelector={quote(selector)}{watch}")
        assert_status(code, body, 400, "BadRequest", *words)


def test_field_selectors_refused_as_the_api_server_does(kube: KubeCluster) -> None:
    code, body = http(kube, "GET", f"{DEPLOYMENTS}?fieldSelector=spec.selector%3Dx")
    assert_status(code, body, 400, "BadRequest", "field label not supported: spec.selector")
    code, body = http(kube, "GET", f"{DEPLOYMENTS}?fieldSelector=metadata.name")
    assert_status(code, body, 400, "BadRequest", "metadata.name")
    code, body = http(kube, "GET", "/api/v1/events?fieldSelector=involvedObject.color%3Dred")
    assert_status(code, body, 400, "BadRequest", "involvedObject.color")


def test_kubectl_reports_the_bad_selector(kube: KubeCluster, kubectl: Kubectl) -> None:
    result = kubectl("get", "fleetdep", "-l", "site in (lab")
    assert result.returncode == 1
    assert "Error from server (BadRequest)" in result.stderr
    assert "site in (lab" in result.stderr


def test_bad_bodies_and_content_types(kube: KubeCluster) -> None:
    json_type = {"Content-Type": "application/json"}
    code, body = http(kube, "POST", DEPLOYMENTS, b"{not json", json_type)
    assert_status(code, body, 400, "BadRequest", "not JSON")
    code, body = http(kube, "POST", DEPLOYMENTS, b"[1, 2]", json_type)
    assert_status(code, body, 400, "BadRequest", "JSON object")
    code, body = http(kube, "POST", DEPLOYMENTS, b'{"metadata": {}}', json_type)
    assert_status(code, body, 422, "Invalid", "metadata.name")
    code, body = http(
        kube, "POST", DEPLOYMENTS, b'{"metadata": {"name": "a", "namespace": "b"}}', json_type
    )
    assert_status(code, body, 400, "BadRequest", "namespace")

    kube.create_deployment("default", "web", selector={}, score=SCORE)
    code, body = http(kube, "POST", DEPLOYMENTS, b'{"metadata": {"name": "web"}}', json_type)
    assert_status(code, body, 409, "AlreadyExists", '"web" already exists')
    smp = {"Content-Type": "application/strategic-merge-patch+json"}
    code, body = http(kube, "PATCH", f"{DEPLOYMENTS}/web", b'{"spec": {}}', smp)
    assert_status(code, body, 415, "UnsupportedMediaType", "application/merge-patch+json")
    json_patch = {"Content-Type": "application/json-patch+json"}
    code, body = http(kube, "PATCH", f"{DEPLOYMENTS}/web", b'{"spec": {}}', json_patch)
    assert_status(code, body, 400, "BadRequest", "JSON array")
    merge = {"Content-Type": "application/merge-patch+json"}
    code, body = http(kube, "PATCH", f"{DEPLOYMENTS}/nope", b'{"spec": {}}', merge)
    assert_status(code, body, 404, "NotFound", 'deployments.fleet.nationtech.io "nope" not found')
    code, body = http(kube, "DELETE", f"{DEPLOYMENTS}/nope")
    assert_status(code, body, 404, "NotFound", '"nope" not found')

    # the emulator is unharmed: the object is as it was, and a good patch still applies
    code, body = http(
        kube, "PATCH", f"{DEPLOYMENTS}/web", b'{"spec": {"selector": {"a": 1}}}', merge
    )
    assert code == 200, body
    assert body["metadata"]["generation"] == 2
    code, body = http(
        kube,
        "PATCH",
        f"{DEPLOYMENTS}/web",
        b'[{"op": "replace", "path": "/spec/selector", "value": {}}]',
        json_patch,
    )
    assert code == 200, body
    assert body["spec"]["selector"] == {}


def test_unknown_paths_are_404_not_500(kube: KubeCluster) -> None:
    code, body = http(kube, "GET", "/apis/nope.example.com/v1")
    assert_status(code, body, 404, "NotFound", "/apis/nope.example.com/v1")
    code, body = http(kube, "GET", "/openapi/v3/apis/nope.example.com/v1")
    assert_status(code, body, 404, "NotFound")


def test_apply_refuses_a_misspelt_field_as_a_real_server(
    kube: KubeCluster, kubectl: Kubectl, tmp_path: Path
) -> None:
    """kubectl sends ``fieldValidation=Strict``: an unknown field is refused, nothing stored."""
    manifest = yaml.safe_load(EXAMPLE.read_text())
    manifest["spec"]["selektor"] = manifest["spec"].pop("selector")
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(manifest))
    result = kubectl("apply", "-f", str(path))
    assert result.returncode == 1
    assert 'strict decoding error: unknown field "spec.selektor"' in result.stderr
    assert kube.deployment("default", "hello-web") is None
    # the score keeps unknown fields on purpose (x-kubernetes-preserve-unknown-fields)
    manifest["spec"]["selector"] = manifest["spec"].pop("selektor")
    manifest["spec"]["score"]["anything"] = {"goes": True}
    path.write_text(yaml.safe_dump(manifest))
    assert "created" in kubectl.ok("apply", "-f", str(path))
