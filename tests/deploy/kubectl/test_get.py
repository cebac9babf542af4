"""``kubectl get`` on the emulator: printer columns, short names, -o json/yaml, selectors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import DEPLOY
from tests.fixtures.kube import GROUP, VERSION, KubeCluster

from .conftest import Kubectl, http, set_status, table

pytestmark = pytest.mark.timeout(120)
AGE = re.compile(r"\d+[smhdy]")
SCORE = {"type": "podman", "containers": []}


def seed_deployments(kube: KubeCluster) -> None:
    kube.create_deployment(
        "default", "hello-web", selector={"matchLabels": {"site": "lab"}}, score=SCORE
    )
    kube.create_deployment("shop", "hello-shop", selector={}, score=SCORE)
    set_status(
        kube,
        "deployments",
        "hello-web",
        namespace="default",
        status={
            "aggregate": {
                "targeted": 3,
                "running": 1,
                "pending": 1,
                "failed": 1,
                "unreachable": 0,
                "unhealthy": 1,
            },
            "conditions": [
                {"type": "Progressing", "status": "True", "reason": "Rolling"},
                {"type": "Ready", "status": "False", "reason": "DevicesFailed"},
            ],
            "rollout": {"revision": 4, "phase": "Progressing"},
        },
    )


def test_get_deployments_shows_the_crds_printer_columns(
    kube: KubeCluster, kubectl: Kubectl
) -> None:
    seed_deployments(kube)
    header, rows = table(kubectl.ok("get", "fleetdep", "-A"))
    assert header == [
        "NAMESPACE",
        "NAME",
        "TARGETED",
        "RUNNING",
        "PENDING",
        "FAILED",
        "UNREACHABLE",
        "READY",
        "REVISION",
        "ROLLOUT",
        "AGE",
    ]
    assert rows["hello-web"][:-1] == [
        "default",
        "hello-web",
        "3",
        "1",
        "1",
        "1",
        "0",
        "False",
        "4",
        "Progressing",
    ]
    assert AGE.fullmatch(rows["hello-web"][-1])
    assert rows["hello-shop"][:2] == ["shop", "hello-shop"]
    assert rows["hello-shop"][2:-1] == []  # no status yet: empty cells, printed blank

    wide_header, wide = table(
        kubectl.ok("get", "deployments.fleet.nationtech.io", "-o", "wide", "-n", "default")
    )
    assert wide_header[wide_header.index("READY") + 1] == "REASON"  # a priority-1 column
    assert wide_header[wide_header.index("UNREACHABLE") + 1] == "UNHEALTHY"  # another
    assert wide["hello-web"][wide_header.index("UNHEALTHY")] == "1"
    assert wide["hello-web"][wide_header.index("REASON")] == "DevicesFailed"
    assert "hello-shop" not in wide  # the namespace from -n, not every namespace


def test_get_devices_cluster_scoped_with_their_columns(kube: KubeCluster, kubectl: Kubectl) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Device",
        "metadata": {"name": "pi-lab-1", "labels": {"site": "lab"}},
        "spec": {"deviceId": "pi-lab-1"},
    }
    kube.custom.create_cluster_custom_object(GROUP, VERSION, "devices", body)
    set_status(
        kube,
        "devices",
        "pi-lab-1",
        status={
            "online": True,
            "lastHeartbeat": "2020-01-01T00:00:00Z",
            "agentVersion": "0.9.1",
            "stale": False,
        },
    )
    header, rows = table(kubectl.ok("get", "fleetdev"))
    assert header == ["NAME", "ONLINE", "LAST-HEARTBEAT", "AGENT", "STALE", "AGE"]
    _name, online, heartbeat, agent, stale, age = rows["pi-lab-1"]
    assert (online, agent, stale) == ("true", "0.9.1", "false")
    assert re.fullmatch(r"\d+y\d*d?", heartbeat)  # a date column is shown as an age
    assert AGE.fullmatch(age)

    selected = kubectl.ok("get", "fleetdev", "-l", "site=lab", "-o", "name")
    assert selected.split() == ["device.fleet.nationtech.io/pi-lab-1"]
    assert "No resources found" in kubectl("get", "fleetdev", "-l", "site in (shop)").stderr


def short_names() -> list[str]:
    names = []
    for path in sorted((DEPLOY / "crds").glob("*.yaml")):
        names.extend(yaml.safe_load(path.read_text())["spec"]["names"].get("shortNames", []))
    return names


def test_every_short_name_resolves_without_a_could_also_match_warning(
    kube: KubeCluster, kubectl: Kubectl
) -> None:
    assert len(short_names()) == 5
    for short in [*short_names(), "fleet", "ns", "ev", "crd"]:
        result = kubectl("get", short, "-A")
        assert result.returncode == 0, result.stderr
        assert "could also match" not in result.stderr
        assert result.stderr in ("", "No resources found\n"), result.stderr
    resources = kubectl.ok("api-resources", "--api-group", GROUP)
    assert "fleetdep" in resources
    assert "/status" not in resources
    assert "default" in kubectl.ok("get", "ns")


def test_json_and_yaml_outputs_and_the_raw_list(kube: KubeCluster, kubectl: Kubectl) -> None:
    seed_deployments(kube)
    listed = json.loads(kubectl.ok("get", "fleetdep", "-A", "-o", "json"))
    assert listed["kind"] == "List"
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["hello-shop", "hello-web"]
    assert {i["kind"] for i in listed["items"]} == {"Deployment"}
    one = yaml.safe_load(kubectl.ok("get", "fleetdep", "hello-web", "-o", "yaml"))
    assert (one["kind"], one["apiVersion"]) == ("Deployment", f"{GROUP}/{VERSION}")
    assert one["status"]["aggregate"]["targeted"] == 3
    path = f"/apis/{GROUP}/{VERSION}/deployments"
    code, raw = http(kube, "GET", path)
    assert code == 200
    assert (raw["kind"], raw["apiVersion"]) == ("DeploymentList", f"{GROUP}/{VERSION}")
    assert raw["metadata"]["resourceVersion"].isdigit()
    jsonpath = "{.items[*].metadata.name}"
    names = kubectl.ok("get", "fleetdep", "-n", "default", "-o", f"jsonpath={jsonpath}")
    assert names == "hello-web"


def test_field_selectors_on_lists(kube: KubeCluster, kubectl: Kubectl, tmp_path: Path) -> None:
    seed_deployments(kube)
    out = kubectl.ok(
        "get", "fleetdep", "-A", "--field-selector", "metadata.namespace=shop", "-o", "name"
    )
    assert out.split() == ["deployment.fleet.nationtech.io/hello-shop"]
    out = kubectl.ok(
        "get", "fleetdep", "-A", "--field-selector", "metadata.name!=hello-shop", "-o", "name"
    )
    assert out.split() == ["deployment.fleet.nationtech.io/hello-web"]
