"""The Deployment CRD checks each score type's fields and bounds, as the API server would.

Each case is checked twice: against the CRD's openAPIV3Schema (jsonschema, as in
test_examples) and against the operator's own reader, which must agree: a score the CRD
accepts is one the operator accepts, and a bound the CRD states is the contract's.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from fleet.actors.operator.spec import parse_spec
from fleet.errors import SpecError
from tests.deploy.test_examples import SCHEMAS, check

API = "fleet.nationtech.io/v1alpha1"
KVM: dict[str, Any] = {
    "type": "kvm", "name": "vm", "disk": {"url": "https://images.example/tiny.qcow2",
                                          "sha256": "a" * 64},
    "boot": {"kernel": {"url": "/boot/vmlinuz"}, "initrd": {"url": "/boot/initrd"},
             "cmdline": "console=ttyS0"},
    "memory_mib": 256, "vcpus": 2, "cloud_init": {"user_data": "#cloud-config\n"},
    "ports": [{"host_port": 2222, "guest_port": 22, "protocol": "tcp"}], "health_port": 2222,
    "autostart": False,
}  # fmt: skip
KUBE: dict[str, Any] = {
    "type": "kubernetes", "namespace": "shop",
    "manifests": [{"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "labels": {"app": "web"}},
                   "spec": {"replicas": 2, "anything": {"free": ["form"]}}}],
}  # fmt: skip
PODMAN: dict[str, Any] = {"type": "podman", "containers": [{"name": "web", "image": "busybox"}]}


def deployment(score: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "fleet.nationtech.io/v1alpha1", "kind": "Deployment",
        "metadata": {"name": "app", "namespace": "default"},
        "spec": {"selector": {}, "score": score},
    }  # fmt: skip


def operator_accepts(score: dict[str, Any]) -> bool:
    try:
        parse_spec(name="app", spec_json=json.dumps({"selector": {}, "score": score}).encode())
    except SpecError:
        return False
    return True


@pytest.mark.parametrize("score", [PODMAN, KVM, KUBE], ids=["podman", "kvm", "kubernetes"])
def test_every_type_passes_the_crd_whole_and_the_operator(score: dict[str, Any]) -> None:
    check(deployment(score))  # nothing refused, nothing pruned
    assert operator_accepts(score)


def _with(score: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(score)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


@pytest.mark.parametrize(
    ("score", "path", "value"),
    [
        (PODMAN, "type", "docker"),
        (KVM, "memory_mib", 15),
        (KVM, "memory_mib", 1024 * 1024 + 1),
        (KVM, "vcpus", 0),
        (KVM, "vcpus", 257),
        (KVM, "name", "Not_A_Label"),
        (KVM, "disk.url", ""),
        (KVM, "disk.url", "/x" * 1025),
        (KVM, "disk.sha256", "ABC"),
        (KVM, "ports.0.guest_port", 70000),
        (KVM, "ports.0.protocol", "sctp"),
        (KVM, "health_port", 0),
        (KVM, "autostart", "yes"),
        (KVM, "cloud_init.user_data", "x" * (32 * 1024 + 1)),
        (KVM, "boot.cmdline", "x" * 4097),
        (KUBE, "namespace", "Shop"),
        (KUBE, "manifests", []),
        (KUBE, "manifests", [KUBE["manifests"][0]] * 65),
        (KUBE, "manifests.0", {"apiVersion": "v1", "kind": "ConfigMap"}),
        (KUBE, "manifests.0.metadata", {"labels": {}}),
    ],
)
def test_a_bound_is_refused_by_the_crd_and_by_the_operator(
    score: dict[str, Any], path: str, value: Any
) -> None:
    bad = _with(score, path, value)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            deployment(bad), SCHEMAS[("fleet.nationtech.io/v1alpha1", "Deployment")]
        )
    assert not operator_accepts(bad)


def test_a_revision_holds_any_of_the_types_and_no_other() -> None:
    schema = SCHEMAS[(API, "DeploymentRevision")]

    def revision(score: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": API, "kind": "DeploymentRevision", "metadata": {"name": "app-r1"},
            "spec": {"deployment": "app", "revision": 1, "score": score},
        }  # fmt: skip

    for score in (PODMAN, KVM, KUBE):
        jsonschema.validate(revision(score), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(revision({**PODMAN, "type": "docker"}), schema)
