"""The examples a user applies first are accepted by the CRDs and by the operator.

``deploy/examples/*.yaml`` must pass the CRD's openAPIV3Schema (what the API server checks),
carry no field the API server would silently prune (a typo there is a field that
vanishes), and hold a score the operator accepts (the contracts' own validation).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from fleet.actors.operator.spec import parse_spec
from fleet.contracts import API_VERSION, DeploymentName, DeviceId, convert_score
from tests.deploy.conftest import DEPLOY
from tests.scores import podman

EXAMPLES = sorted((DEPLOY / "examples").glob("*.yaml"))


def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in (DEPLOY / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


SCHEMAS = _crd_schemas()


def pruned_fields(obj: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields a structural schema does not declare: the API server drops them on write."""
    found: list[str] = []
    if isinstance(obj, dict) and schema.get("type") == "object":
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            props = schema.get("properties", {})
            return [
                f
                for k, v in obj.items()
                if k in props
                for f in pruned_fields(v, props[k], f"{path}.{k}")
            ]
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in obj.items():
            if props is not None and key in props:
                found += pruned_fields(value, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += pruned_fields(value, extra, f"{path}.{key}")
            elif path != ".metadata" and not (path == "" and key == "metadata"):
                found.append(f"{path}.{key}")
    elif isinstance(obj, list) and "items" in schema:
        for index, item in enumerate(obj):
            found += pruned_fields(item, schema["items"], f"{path}[{index}]")
    return found


def check(obj: dict[str, Any]) -> None:
    """Raise if the API server would reject ``obj`` or drop any of its fields."""
    schema = SCHEMAS[(obj["apiVersion"], obj["kind"])]
    jsonschema.validate(obj, schema)
    pruned = pruned_fields(obj, schema)
    if pruned:
        raise AssertionError(f"fields the API server would prune: {pruned}")


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_hello_web_is_shipped() -> None:
    assert DEPLOY / "examples" / "hello-web.yaml" in EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_passes_its_crd_schema_and_the_operator_checks(path: Path) -> None:
    for obj in _documents(path):
        assert obj["apiVersion"] == API_VERSION
        check(obj)
        if obj["kind"] == "Deployment":
            DeploymentName.try_new(obj["metadata"]["name"])
            # the operator's own reader: per-device templates compiled, the score validated
            parse_spec(name=obj["metadata"]["name"], spec_json=json.dumps(obj["spec"]).encode())


def test_hello_web_serves_a_page_on_a_published_port() -> None:
    (obj,) = _documents(DEPLOY / "examples" / "hello-web.yaml")
    assert obj["spec"]["selector"]["matchLabels"]
    score = podman(convert_score(obj["spec"]["score"]))
    (container,) = score.containers
    assert container.image == "localhost:5000/busybox:test"  # the demo's registry fills it in
    assert container.command is not None
    assert "httpd" in " ".join(container.command)
    assert [(p.host_port, p.container_port) for p in container.ports or ()] == [(8080, 80)]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda o: o["spec"]["score"]["containers"][0]["ports"][0].update(host_port="8080"),
            "is not of type",
        ),
        (lambda o: o["spec"].pop("selector"), "'selector' is a required property"),
        (lambda o: o["spec"]["selector"].update(matchLabel={"a": "b"}), "spec.selector.matchLabel"),
        (lambda o: o["spec"]["score"]["containers"][0]["ports"][0].update(hostPort=1), "hostPort"),
    ],
    ids=["port-as-string", "no-selector", "selector-typo", "port-field-typo"],
)
def test_a_broken_example_is_caught(mutate: Any, expected: str) -> None:
    (obj,) = _documents(DEPLOY / "examples" / "hello-web.yaml")
    broken = copy.deepcopy(obj)
    mutate(broken)
    with pytest.raises((jsonschema.ValidationError, AssertionError), match=expected):
        check(broken)


def test_the_per_device_values_example_renders_for_each_device() -> None:
    (obj,) = _documents(DEPLOY / "examples" / "per-device-values.yaml")
    spec = parse_spec(name=obj["metadata"]["name"], spec_json=json.dumps(obj["spec"]).encode())
    assert spec.template is not None
    pi = spec.template.render(device=DeviceId("pi_01"), labels={"site": "paris"})
    (container,) = podman(pi).containers
    assert container.env == {"SITE_ID": "paris", "REGION": "EU-WEST", "HOSTNAME_HINT": "pi-01"}
    assert container.command is not None
    assert "gateway pi_01 at paris" in container.command[2]
