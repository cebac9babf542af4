"""Shipping the operator: the kustomize base and the Helm chart render valid, identical objects.

What a cluster admin runs is ``kubectl apply -k deploy/kustomize`` or ``helm install
harmony-fleet-operator deploy/helm/harmony-fleet-operator -n fleet-system``; both must give
the same, schema-valid objects, and the chart's values must reach ``fleet-operator`` as
arguments it accepts.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from fleet.cli.operator import parse_args
from tests.deploy.conftest import (
    CHART,
    DEPLOY,
    KUSTOMIZE,
    NAMESPACE,
    RELEASE,
    by_kind_name,
)
from tests.deploy.helm import helm, render_chart

# The oldest Kubernetes release still commonly run, and the newest the package ships.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
EXPECTED = {
    ("Namespace", NAMESPACE),
    ("CustomResourceDefinition", "deployments.fleet.nationtech.io"),
    ("CustomResourceDefinition", "deploymentrevisions.fleet.nationtech.io"),
    ("CustomResourceDefinition", "devices.fleet.nationtech.io"),
    ("CustomResourceDefinition", "enrollmentrequests.fleet.nationtech.io"),
    ("CustomResourceDefinition", "bootstraptokens.fleet.nationtech.io"),
    ("ServiceAccount", RELEASE),
    ("ClusterRole", RELEASE),
    ("ClusterRoleBinding", RELEASE),
    ("Role", RELEASE),  # leader election: the Lease
    ("RoleBinding", RELEASE),
    ("Deployment", RELEASE),
    ("Service", f"{RELEASE}-metrics"),
    ("PersistentVolumeClaim", f"{RELEASE}-authority"),
}


def _operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = by_kind_name(objects)[("Deployment", RELEASE)]
    container: dict[str, Any]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_kustomize_base_renders_the_operator_and_its_namespace(
    kustomize_objects: list[dict[str, Any]],
) -> None:
    assert set(by_kind_name(kustomize_objects)) == EXPECTED
    for obj in kustomize_objects:
        if obj["kind"] in ("ServiceAccount", "Deployment"):
            assert obj["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("source", ["kustomize", "helm"])
def test_every_object_validates_against_the_kubernetes_schemas(
    source: str,
    version: str,
    kustomize_objects: list[dict[str, Any]],
    chart_objects: list[dict[str, Any]],
) -> None:
    objects = kustomize_objects if source == "kustomize" else chart_objects
    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            errors.append(f"{obj['kind']}/{obj['metadata']['name']} at {where}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_chart_renders_the_same_objects_as_the_kustomize_base(
    kustomize_objects: list[dict[str, Any]], chart_objects: list[dict[str, Any]]
) -> None:
    base = by_kind_name(kustomize_objects)
    del base[("Namespace", NAMESPACE)]  # helm install --create-namespace makes it
    chart = by_kind_name(chart_objects)
    assert set(chart) == set(base)
    for key, obj in chart.items():
        assert obj == base[key], f"{key}: the chart and deploy/kustomize differ"


def test_helm_lint_passes() -> None:
    result = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    "copy_dir", [CHART / "crds", KUSTOMIZE / "crds"], ids=["helm", "kustomize"]
)
def test_crd_copies_are_identical_to_deploy_crds(copy_dir: Any) -> None:
    originals = {p.name: p.read_bytes() for p in (DEPLOY / "crds").glob("*.yaml")}
    copies = {p.name: p.read_bytes() for p in copy_dir.glob("*.yaml")}
    assert originals, "deploy/crds has no CRDs"
    assert copies == originals, f"run: cp deploy/crds/*.yaml {copy_dir.relative_to(DEPLOY.parent)}/"


def test_chart_values_reach_fleet_operator_as_arguments_it_accepts() -> None:
    urls = ["nats://nats-a.example:4222", "tls://nats-b.example:4222"]
    objects = render_chart(
        CHART,
        release=RELEASE,
        namespace=NAMESPACE,
        values={
            "nats": {"urls": urls},
            "watchNamespaces": ["edge", "lab"],
            "livenessTimeoutSeconds": "45",
            "extraArgs": ["--device-qps=20"],
            "image": {"repository": "registry.example.com/fleet/operator", "tag": "0.1.0"},
        },
    )
    container = _operator_container(objects)
    assert container["image"] == "registry.example.com/fleet/operator:0.1.0"
    args = parse_args(container["args"])
    assert args.nats_url == urls
    assert args.namespace == ["edge", "lab"]
    assert args.liveness_timeout == 45.0
    assert args.device_qps == 20.0
    assert args.leader_elect  # two replicas by default, one leader
    assert args.lease_name == RELEASE
    assert args.lease_timing == (15.0, 10.0, 2.0)
    assert args.bucket_settings.replicas == 3  # the 3-server cluster of deploy/nats
    assert args.privileged_namespaces is None  # every namespace, until the admin says


def test_shards_render_one_deployment_each_with_its_own_index_and_lease() -> None:
    objects = render_chart(CHART, release=RELEASE, namespace=NAMESPACE, values={"shards": 3})
    found = by_kind_name(objects)
    assert ("Deployment", RELEASE) not in found
    leases = set()
    for index in range(3):
        deployment = found[("Deployment", f"{RELEASE}-shard-{index}")]
        spec = deployment["spec"]
        shard_label = {"fleet.nationtech.io/shard": str(index)}
        # each Deployment selects its own shard's pods only (selectors must not overlap)
        assert spec["selector"]["matchLabels"].items() >= shard_label.items()
        assert spec["template"]["metadata"]["labels"].items() >= shard_label.items()
        assert spec["replicas"] == 2
        (container,) = spec["template"]["spec"]["containers"]
        args = parse_args(container["args"])
        assert (args.shard.count, args.shard.index) == (3, index)
        assert args.leader_elect
        leases.add(args.lease_name)
    assert leases == {RELEASE}  # the base name: each shard's Lease is <base>-shard-<i>
    off = {"shards": 2, "leaderElection": {"enabled": False}}
    with pytest.raises(AssertionError, match=r"shards > 1 needs leaderElection\.enabled"):
        render_chart(CHART, release=RELEASE, namespace=NAMESPACE, values=off)


def test_default_arguments_are_accepted_and_point_at_the_fleet_nats_release(
    chart_objects: list[dict[str, Any]],
) -> None:
    args = parse_args(_operator_container(chart_objects)["args"])
    nats_values = yaml.safe_load((DEPLOY / "nats" / "values.yaml").read_text())
    assert nats_values["config"]["jetstream"]["enabled"] is True
    assert nats_values["config"]["jetstream"]["fileStore"]["enabled"] is True
    (url,) = args.nats_url
    # The official chart names its client Service after the release: fleet-nats.
    assert urlsplit(url).hostname == f"fleet-nats.{NAMESPACE}.svc"
    assert args.namespace == []  # all namespaces


def _mounts(objects: list[dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each mount path of the operator container: (volume name, the volume)."""
    deployment = by_kind_name(objects)[("Deployment", RELEASE)]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    return {
        m["mountPath"]: (m["name"], volumes[m["name"]])
        for m in _operator_container(objects)["volumeMounts"]
    }


def test_by_default_the_operator_runs_with_device_identity_and_tls(
    chart_objects: list[dict[str, Any]],
) -> None:
    args = parse_args(_operator_container(chart_objects)["args"])
    mounts = _mounts(chart_objects)
    nats_values = yaml.safe_load((DEPLOY / "nats" / "values.yaml").read_text())
    # TLS: the CA from the Secret the fleet-nats values serve the server certificate from
    assert urlsplit(args.nats_url[0]).scheme == "tls"
    assert args.nats_ca is not None
    _, ca_volume = mounts[str(args.nats_ca.parent)]
    assert ca_volume["secret"]["secretName"] == nats_values["config"]["nats"]["tls"]["secretName"]
    assert ca_volume["secret"]["items"] == [{"key": args.nats_ca.name, "path": args.nats_ca.name}]
    # the keys from a Secret, read-only; everything the operator writes on the claim
    keys_name, keys_volume = mounts[str(args.auth_keys)]
    assert keys_volume["secret"]["secretName"] == "fleet-authority"
    # the whole Secret: the seeds and, after a rotation, retired-signing-keys.json
    assert "items" not in keys_volume["secret"]
    mount = next(m for m in _operator_container(chart_objects)["volumeMounts"]
                 if m["name"] == keys_name)  # fmt: skip
    assert mount["readOnly"] is True
    _, state = mounts[str(args.auth_dir)]
    assert state["persistentVolumeClaim"]["claimName"] == f"{RELEASE}-authority"
    assert args.device_credential_ttl == 86400.0


def test_auth_off_runs_open_and_persistence_off_keeps_revocations_in_an_empty_dir() -> None:
    off = render_chart(
        CHART, release=RELEASE, namespace=NAMESPACE,
        values={"auth": {"enabled": False}, "nats": {"caSecret": "", "urls": ["nats://n:4222"]}},
    )  # fmt: skip
    args = parse_args(_operator_container(off)["args"])
    assert (args.auth_dir, args.auth_keys, args.nats_ca) == (None, None, None)
    assert ("PersistentVolumeClaim", f"{RELEASE}-authority") not in by_kind_name(off)
    assert set(_mounts(off)) == {"/tmp"}
    ephemeral = render_chart(
        CHART, release=RELEASE, namespace=NAMESPACE,
        values={"auth": {"persistence": {"enabled": False}}},
    )  # fmt: skip
    args = parse_args(_operator_container(ephemeral)["args"])
    assert _mounts(ephemeral)[str(args.auth_dir)][1] == {"name": "authority", "emptyDir": {}}
    assert ("PersistentVolumeClaim", f"{RELEASE}-authority") not in by_kind_name(ephemeral)
    classed = render_chart(
        CHART, release=RELEASE, namespace=NAMESPACE,
        values={"auth": {"persistence": {"storageClassName": "fast", "size": "1Gi"}}},
    )  # fmt: skip
    claim = by_kind_name(classed)[("PersistentVolumeClaim", f"{RELEASE}-authority")]
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"


def test_operator_pod_is_unprivileged_with_requests_and_probes(
    chart_objects: list[dict[str, Any]],
) -> None:
    deployment = by_kind_name(chart_objects)[("Deployment", RELEASE)]
    pod = deployment["spec"]["template"]["spec"]
    container = _operator_container(chart_objects)
    assert pod["serviceAccountName"] == RELEASE
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def _metrics_port(container: dict[str, Any]) -> int | None:
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", ())}
    return ports.get("metrics")


def test_probes_ask_the_port_the_operator_serves_them_on(
    chart_objects: list[dict[str, Any]],
) -> None:
    container = _operator_container(chart_objects)
    args = parse_args(container["args"])
    assert args.metrics_address == ("0.0.0.0", 8080)  # every interface: the kubelet's too
    assert _metrics_port(container) == 8080
    moved = _operator_container(render_chart(
        CHART, release=RELEASE, namespace=NAMESPACE, values={"metrics": {"port": 9100}},
    ))  # fmt: skip
    assert parse_args(moved["args"]).metrics_address == ("0.0.0.0", 9100)
    assert _metrics_port(moved) == 9100
    assert moved["readinessProbe"]["httpGet"]["port"] == "metrics"
    off = _operator_container(render_chart(
        CHART, release=RELEASE, namespace=NAMESPACE, values={"metrics": {"enabled": False}},
    ))  # fmt: skip
    assert parse_args(off["args"]).metrics_address is None
    assert "ports" not in off
    assert "readinessProbe" not in off
    assert "livenessProbe" not in off
