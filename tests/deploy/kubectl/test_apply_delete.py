"""``kubectl apply`` (client-side: get, create with the last-applied annotation, then merge
patches) and ``kubectl delete`` on the emulator, with the example the README shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.fixtures.kube import KubeCluster
from tests.operator.sim import eventually

from .conftest import EXAMPLE, Kubectl

pytestmark = pytest.mark.timeout(120)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def test_apply_creates_updates_then_delete_removes(
    kube: KubeCluster, kubectl: Kubectl, tmp_path: Path
) -> None:
    assert kubectl.ok("apply", "-f", str(EXAMPLE)).strip() == (
        "deployment.fleet.nationtech.io/hello-web created"
    )
    created = kube.deployment("default", "hello-web")
    assert created is not None
    assert created["metadata"]["generation"] == 1
    assert json.loads(created["metadata"]["annotations"][LAST_APPLIED])["metadata"]["name"] == (
        "hello-web"
    )

    changed = yaml.safe_load(EXAMPLE.read_text())
    changed["spec"]["selector"]["matchLabels"] = {"site": "shop"}
    del changed["spec"]["score"]["containers"][0]["restart_policy"]  # removed: patched as null
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(changed))
    assert "configured" in kubectl.ok("apply", "-f", str(path))
    updated = kube.deployment("default", "hello-web")
    assert updated is not None
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert updated["metadata"]["generation"] == 2
    assert updated["spec"]["selector"] == {"matchLabels": {"site": "shop"}}
    assert "restart_policy" not in updated["spec"]["score"]["containers"][0]
    assert "unchanged" in kubectl.ok("apply", "-f", str(path))

    out = kubectl.ok("delete", "-f", str(path))
    assert 'deployment.fleet.nationtech.io "hello-web" deleted' in out
    assert kube.deployment("default", "hello-web") is None
    gone = kubectl("get", "fleetdep", "hello-web")
    assert gone.returncode == 1
    assert (
        'Error from server (NotFound): deployments.fleet.nationtech.io "hello-web" not found'
        in (gone.stderr)
    )


def test_delete_waits_for_a_finalizer(kube: KubeCluster, kubectl: Kubectl) -> None:
    """``kubectl delete`` waits (a watch by metadata.name) until the object is really gone."""
    kubectl.ok("apply", "-f", str(EXAMPLE))
    kube.custom.patch_namespaced_custom_object(
        "fleet.nationtech.io",
        "v1alpha1",
        "default",
        "deployments",
        "hello-web",
        {"metadata": {"finalizers": ["fleet.nationtech.io/test"]}},
    )
    with kubectl.popen("delete", "fleetdep", "hello-web", "--timeout=60s") as waiting:
        try:
            eventually(
                lambda: (kube.deployment("default", "hello-web") or {})["metadata"].get(
                    "deletionTimestamp"
                ),
                timeout=30,
            )
            assert waiting.poll() is None  # still waiting on the finalizer
            kube.custom.patch_namespaced_custom_object(
                "fleet.nationtech.io",
                "v1alpha1",
                "default",
                "deployments",
                "hello-web",
                {"metadata": {"finalizers": None}},
            )
            out, err = waiting.communicate(timeout=60)
        finally:
            waiting.kill()
            waiting.wait(timeout=10)
    assert waiting.returncode == 0, err
    assert "deleted" in out
    assert kube.deployment("default", "hello-web") is None
