"""The ``kubernetes`` runtime's pure rules (runtimes/kube_objects.py) and its config table
(kube_config.py), without a cluster: marks, drift, readiness, hostile live objects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleet.actors.agent.config import parse_config
from fleet.actors.agent.runtimes.kube_objects import (
    DEVICE_LABEL,
    HASH_LABEL,
    KINDS_ANNOTATION,
    desired_object,
    device_value,
    drifted,
    inventory,
    is_owned,
    readiness,
    revision_of,
)
from fleet.contracts import DeploymentName, DeviceId
from fleet.errors import ConfigError

DEVICE = DeviceId("edge-1")
WEB = DeploymentName("web")
MANIFEST: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "conf", "labels": {"app": "web"}},
    "data": {"mode": "fast"},
}


def applied(manifest: dict[str, Any] = MANIFEST, revision: int = 3) -> dict[str, Any]:
    return desired_object(manifest, namespace="shop", device=DEVICE, deployment=WEB,
                          revision=revision)  # fmt: skip


def test_an_applied_object_is_marked_and_owned() -> None:
    obj = applied()
    assert obj["metadata"]["namespace"] == "shop"
    assert obj["metadata"]["labels"]["app"] == "web"
    assert is_owned(obj, DEVICE, "web")
    assert not is_owned(obj, DEVICE, "other")
    assert not is_owned(obj, DeviceId("edge-2"), "web")
    assert revision_of(obj) == 3
    assert MANIFEST["metadata"] == {"name": "conf", "labels": {"app": "web"}}  # not mutated


def test_a_device_id_that_is_no_label_value_is_hashed() -> None:
    assert device_value(DEVICE) == "edge-1"
    long = DeviceId("d" * 100)
    assert len(device_value(long)) <= 63
    assert device_value(long) != device_value(DeviceId("d" * 99))
    assert device_value(DeviceId("ends-with-dash-")).startswith("h-")


def test_drift_is_a_changed_manifest_or_a_field_edited_by_hand() -> None:
    wanted = applied()
    live = json.loads(json.dumps(wanted))
    live["metadata"].update(uid="u", resourceVersion="9", managedFields=[])
    live["data"]["extra"] = "server-added"  # fields the server adds are not drift
    assert not drifted(live, wanted)
    assert not drifted(live, applied(revision=4))  # a new revision of the same manifest
    edited = json.loads(json.dumps(live))
    edited["data"]["mode"] = "slow"
    assert drifted(edited, wanted)
    unlabelled = json.loads(json.dumps(live))
    del unlabelled["metadata"]["labels"]["app"]
    assert drifted(unlabelled, wanted)
    other = json.loads(json.dumps(MANIFEST))
    other["data"]["mode"] = "slow"
    assert drifted(live, applied(other))
    assert (
        applied(other)["metadata"]["labels"][HASH_LABEL] != wanted["metadata"]["labels"][HASH_LABEL]
    )


def deployment(status: dict[str, Any] | None, *, generation: int = 2) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"generation": generation}, "spec": {"replicas": 2}}
    if status is not None:
        obj["status"] = status
    return obj


READY = {"observedGeneration": 2, "readyReplicas": 2, "updatedReplicas": 2,
         "availableReplicas": 2}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (READY, "ready"),
        (None, "waiting"),
        ({**READY, "observedGeneration": 1}, "waiting"),
        ({**READY, "readyReplicas": 1}, "waiting"),
        ({**READY, "availableReplicas": 0}, "waiting"),
        ({**READY, "readyReplicas": "2"}, "waiting"),  # hostile: not a number
        (
            {
                "observedGeneration": 2,
                "conditions": [
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": "timed out",
                    }
                ],
            },
            "failed",
        ),
    ],
)
def test_deployment_readiness(status: dict[str, Any] | None, state: str) -> None:
    assert readiness("apps", "Deployment", deployment(status))[0] == state


def test_daemonset_statefulset_and_other_kinds_readiness() -> None:
    ds = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
          "desiredNumberScheduled": 3, "numberReady": 3, "updatedNumberScheduled": 3,
          "numberAvailable": 3}}  # fmt: skip
    assert readiness("apps", "DaemonSet", ds) == ("ready", None)
    ds["status"]["numberReady"] = 2
    assert readiness("apps", "DaemonSet", ds)[0] == "waiting"
    status = {"observedGeneration": 1, "readyReplicas": 1, "updatedReplicas": 1}
    sts = {"metadata": {"generation": 1}, "spec": {"replicas": 1}, "status": status}
    assert readiness("apps", "StatefulSet", sts) == ("ready", None)
    assert readiness("", "ConfigMap", {}) == ("ready", None)
    assert readiness("apps", "Deployment", {"metadata": "hostile", "status": []})[0] == "waiting"


@pytest.mark.parametrize(
    "annotation",
    ['["v1/ConfigMap", "apps/v1/Deployment"]', "not json", '{"a": 1}', '[1, "nokind"]'],
)
def test_a_namespace_inventory_is_read_defensively(annotation: str) -> None:
    ns = {"metadata": {"annotations": {KINDS_ANNOTATION: annotation}}}
    found = inventory(ns)
    assert all(isinstance(k, str) and "/" in k for k in found)
    assert inventory({"metadata": None}) == []


def config(tmp_path: Path, table: str) -> str:
    return f'device_id = "edge-1"\n{table}[nats]\nurls = ["nats://127.0.0.1:4222"]\n'


def test_the_kubernetes_table(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")
    parsed = parse_config(config(tmp_path, f'[kubernetes]\nkubeconfig = "{kubeconfig}"\n'),
                          where="agent.toml")  # fmt: skip
    assert parsed.kubernetes is not None
    assert parsed.kubernetes.field_manager == "fleet-agent"
    assert parsed.kubernetes.context is None
    assert parse_config(config(tmp_path, ""), where="agent.toml").kubernetes is None


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ("[kubernetes]\n", "kubernetes.kubeconfig"),
        ('[kubernetes]\nkubeconfig = "/nonexistent/kubeconfig"\n', "kubernetes.kubeconfig"),
        (
            '[kubernetes]\nkubeconfig = "{k}"\nfield_manager = "has space"\n',
            "kubernetes.field_manager",
        ),
        ('[kubernetes]\nkubeconfig = "{k}"\ncontext = 3\n', "kubernetes.context"),
        ('[kubernetes]\nkubeconfig = "{k}"\nnamespace = "x"\n', "kubernetes.namespace"),
        ('kubernetes = "yes"\n', "kubernetes"),
    ],
)
def test_a_bad_kubernetes_table_names_its_key(tmp_path: Path, table: str, named: str) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")
    with pytest.raises(ConfigError, match=f"`{named}`"):
        parse_config(config(tmp_path, table.replace("{k}", str(kubeconfig))), where="agent.toml")


def test_marks_use_the_device_label() -> None:
    assert applied()["metadata"]["labels"][DEVICE_LABEL] == "edge-1"
