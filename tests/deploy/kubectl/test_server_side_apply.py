"""``kubectl apply --server-side`` on the emulator (fleet/devtools/_kube_apply.py): create
if absent, managed fields per manager, a conflict between managers unless forced, a
second apply of the same thing writes nothing, and a field a manager stops applying goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.kube import KubeCluster

from .conftest import Kubectl

pytestmark = pytest.mark.timeout(120)


def deployment(replicas: int, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", **labels}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.local/web:1"}]},
            },
        },
    }


def write(tmp_path: Path, name: str, body: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body))
    return str(path)


def get(kubectl: Kubectl) -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(
        kubectl.ok(
            "get", "deployment", "web", "-n", "default", "-o", "yaml", "--show-managed-fields"
        )
    )
    return found


def test_server_side_apply_conflicts_force_and_ownership(
    kube: KubeCluster, kubectl: Kubectl, tmp_path: Path
) -> None:
    first = write(tmp_path, "a.yaml", deployment(2, tier="front"))
    out = kubectl.ok("apply", "--server-side", "--field-manager=alice", "-f", first)
    assert "serverside-applied" in out, out
    created = get(kubectl)
    assert created["metadata"]["generation"] == 1
    assert [m["manager"] for m in created["metadata"]["managedFields"]] == ["alice"]
    assert "f:replicas" in created["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]

    kubectl.ok("apply", "--server-side", "--field-manager=alice", "-f", first)
    assert get(kubectl)["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]

    other = write(tmp_path, "b.yaml", deployment(5))
    refused = kubectl("apply", "--server-side", "--field-manager=bob", "-f", other)
    assert refused.returncode != 0
    assert "conflict" in refused.stderr.lower(), refused.stderr
    assert "alice" in refused.stderr, refused.stderr
    assert ".spec.replicas" in refused.stderr, refused.stderr
    assert get(kubectl)["spec"]["replicas"] == 2

    kubectl.ok("apply", "--server-side", "--field-manager=bob", "--force-conflicts", "-f", other)
    forced = get(kubectl)
    assert forced["spec"]["replicas"] == 5
    assert forced["metadata"]["generation"] == 2
    owners = {m["manager"]: m["fieldsV1"] for m in forced["metadata"]["managedFields"]}
    assert "f:replicas" in owners["bob"]["f:spec"]
    assert "f:replicas" not in owners["alice"].get("f:spec", {})

    # alice stops applying her label: it goes (she alone owned it)
    kubectl.ok("apply", "--server-side", "--field-manager=alice", "--force-conflicts", "-f",
               write(tmp_path, "c.yaml", deployment(5)))  # fmt: skip
    assert "tier" not in get(kubectl)["metadata"]["labels"]


def test_server_side_apply_refuses_what_the_api_server_refuses(
    kube: KubeCluster, kubectl: Kubectl, tmp_path: Path
) -> None:
    broken = deployment(1)
    broken["spec"]["selector"]["matchLabels"] = {"app": "other"}
    refused = kubectl("apply", "--server-side", "-f", write(tmp_path, "bad.yaml", broken))
    assert refused.returncode != 0
    assert "does not match template" in refused.stderr, refused.stderr
    missing = deployment(1)
    missing["metadata"]["namespace"] = "nowhere"
    refused = kubectl("apply", "--server-side", "-f", write(tmp_path, "ns.yaml", missing))
    assert refused.returncode != 0
    assert 'namespaces "nowhere" not found' in refused.stderr, refused.stderr
