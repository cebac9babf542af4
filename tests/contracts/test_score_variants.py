"""The kvm and kubernetes score variants: decoded by their ``type``, bounded, and refused
with an error naming the field; podman's canonical bytes unchanged by their arrival."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from fleet.contracts import (
    KubernetesScore,
    KvmScore,
    PodmanScore,
    convert_score,
    decode_score,
    encode_score,
    score_hash,
)
from fleet.contracts.kube_score import MAX_MANIFESTS
from fleet.errors import ContractError

SHA = "a" * 64
KVM: dict[str, Any] = {
    "type": "kvm",
    "name": "guest",
    "boot": {
        "kernel": {"url": "/var/lib/fleet/vmlinuz", "sha256": SHA},
        "initrd": {"url": "https://images.example/initrd.img"},
        "cmdline": "console=ttyS0",
    },
    "memory_mib": 128,
    "vcpus": 2,
    "cloud_init": {"user_data": "#cloud-config\n"},
    "ports": [{"host_port": 8080, "guest_port": 80}],
    "health_port": 8080,
}
DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {"replicas": 1},
}
KUBE: dict[str, Any] = {
    "type": "kubernetes",
    "namespace": "shop",
    "manifests": [
        DEPLOYMENT,
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"}},
    ],
}


def _set(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``base`` with the value at dotted ``path`` replaced (``...`` deletes it)."""
    tree = copy.deepcopy(base)
    *parents, last = path.split(".")
    node: Any = tree
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is ...:
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return tree


def test_each_type_decodes_to_its_variant_and_round_trips() -> None:
    for tree, variant in ((KVM, KvmScore), (KUBE, KubernetesScore)):
        score = decode_score(msgspec.json.encode(tree))
        assert isinstance(score, variant)
        assert decode_score(encode_score(score)) == score
        assert convert_score(tree) == score


def test_kvm_defaults_are_omitted_from_the_canonical_form() -> None:
    score = convert_score({"type": "kvm", "disk": {"url": "/images/debian.qcow2"}})
    assert isinstance(score, KvmScore)
    assert (score.name, score.memory_mib, score.vcpus, score.autostart) == ("vm", 256, 1, True)
    assert encode_score(score) == b'{"type":"kvm","disk":{"url":"/images/debian.qcow2"}}'


def test_podman_bytes_and_hash_are_what_they_were_before_the_union_grew() -> None:
    score = decode_score(b'{"type":"podman","containers":[{"name":"web","image":"busybox"}]}')
    assert isinstance(score, PodmanScore)
    assert (
        encode_score(score) == b'{"type":"podman","containers":[{"name":"web","image":"busybox"}]}'
    )
    assert score_hash(score) == score_hash(convert_score(msgspec.json.decode(encode_score(score))))


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("boot", ..., "disk"),  # neither a disk nor a kernel
        ("boot.kernel.url", "relative/vmlinuz", "boot.kernel.url"),
        ("boot.kernel.url", "/boot/../etc/shadow", "boot.kernel.url"),
        ("boot.kernel.url", "ftp://host/vmlinuz", "boot.kernel.url"),
        ("boot.kernel.url", "/with space", "boot.kernel.url"),
        ("boot.kernel.sha256", "ABC", "boot.kernel.sha256"),
        ("boot.cmdline", "x\x00y", "boot.cmdline"),
        ("memory_mib", 1, "memory_mib"),
        ("memory_mib", True, "memory_mib"),
        ("vcpus", 0, "vcpus"),
        ("name", "Bad_Name", "name"),
        ("ports.0.guest_port", 0, "ports[0].guest_port"),
        ("health_port", 9090, "health_port"),  # not a forwarded port
        ("cloud_init.user_data", "x" * (32 * 1024 + 1), "cloud_init.user_data"),
    ],
)
def test_bad_kvm_score_names_the_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(ContractError) as caught:
        convert_score(_set(KVM, path, value))
    assert caught.value.field == field, str(caught.value)


def test_kvm_port_forwarded_twice_is_refused() -> None:
    tree = _set(
        KVM, "ports", [{"host_port": 1, "guest_port": 2}, {"host_port": 1, "guest_port": 3}]
    )
    with pytest.raises(ContractError) as caught:
        convert_score(_set(tree, "health_port", ...))
    assert caught.value.field == "ports[1].host_port"


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("namespace", "Shop", "namespace"),
        ("manifests", [], "manifests"),
        ("manifests.0", "not an object", "manifests[0]"),
        ("manifests.0.apiVersion", "apps/v1/extra", "manifests[0].apiVersion"),
        ("manifests.0.kind", "", "manifests[0].kind"),
        ("manifests.0.kind", "Deploy ment", "manifests[0].kind"),
        ("manifests.0.metadata", [], "manifests[0].metadata"),
        ("manifests.0.metadata.name", "Web", "manifests[0].metadata.name"),
        ("manifests.0.metadata.name", ..., "manifests[0].metadata.name"),
        ("manifests.1.metadata.namespace", "kube-system", "manifests[1].metadata.namespace"),
    ],
)
def test_bad_kubernetes_score_names_the_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(ContractError) as caught:
        convert_score(_set(KUBE, path, value))
    assert caught.value.field == field, str(caught.value)


def test_kubernetes_object_listed_twice_is_refused_across_versions() -> None:
    twin = _set(DEPLOYMENT, "apiVersion", "apps/v2")
    with pytest.raises(ContractError) as caught:
        convert_score(_set(KUBE, "manifests", [DEPLOYMENT, twin]))
    assert caught.value.field == "manifests[1].metadata.name"
    assert "listed twice" in str(caught.value)


def test_kubernetes_manifest_count_is_bounded() -> None:
    many = [_set(DEPLOYMENT, "metadata.name", f"web-{i}") for i in range(MAX_MANIFESTS + 1)]
    with pytest.raises(ContractError) as caught:
        convert_score(_set(KUBE, "manifests", many))
    assert caught.value.field == "manifests"


def test_unknown_type_is_refused_naming_type() -> None:
    with pytest.raises(ContractError) as caught:
        decode_score(b'{"type":"firecracker","name":"vm"}')
    assert "firecracker" in str(caught.value)


def test_runtime_versions_are_optional_bounded_and_of_listed_runtimes() -> None:
    from fleet.contracts import decode_info, encode_info

    from . import samples

    base = samples.info_json()
    plain = decode_info(msgspec.json.encode(base))
    assert plain.runtime_versions is None
    assert b"runtime_versions" not in encode_info(plain)  # older readers see what they did
    said = {**base, "runtimes": ["podman", "kvm"],
            "runtime_versions": {"kvm": "libvirt 9.0.0 (qemu 7.2.22, emulation)"}}  # fmt: skip
    assert decode_info(msgspec.json.encode(said)).runtime_versions == {
        "kvm": "libvirt 9.0.0 (qemu 7.2.22, emulation)"
    }
    for versions, field in (
        ({"kubernetes": "v1.30"}, "runtime_versions.kubernetes"),  # not a listed runtime
        ({"kvm": "x" * 257}, "runtime_versions.kvm"),
    ):
        with pytest.raises(ContractError) as caught:
            decode_info(msgspec.json.encode({**said, "runtime_versions": versions}))
        assert caught.value.field == field, str(caught.value)


def test_a_kubernetes_manifest_nests_as_deep_as_kubernetes_objects_do() -> None:
    term = {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "In",
                                                    "values": ["web"]}]},
            "topologyKey": "kubernetes.io/hostname"}  # fmt: skip
    anti = {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    pod = {"affinity": {"podAntiAffinity": anti}, "containers": [{"name": "c", "image": "x"}]}
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
            "spec": {"schedule": "0 3 * * *",
                     "jobTemplate": {"spec": {"template": {"spec": pod}}}}}  # fmt: skip
    tree = {"type": "kubernetes", "namespace": "shop", "manifests": [cron]}
    score = convert_score(tree)  # 17 levels deep: fine
    assert decode_score(encode_score(score)) == score
    deep: dict[str, Any] = {"x": 1}
    for _ in range(60):
        deep = {"x": deep}
    with pytest.raises(ContractError, match="levels deep"):
        convert_score({**tree, "manifests": [{**cron, "spec": deep}]})
