"""docs/wire-schema.json is current, and it agrees with the decoders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fleet.contracts import ALL_BUCKETS
from fleet.contracts.schema import render, wire_schema

from . import samples

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "wire-schema.json"


def _validator(type_name: str) -> jsonschema.Draft202012Validator:
    schema = wire_schema()
    return jsonschema.Draft202012Validator(
        {"$defs": schema["$defs"], "$ref": f"#/$defs/{type_name}"}
    )


def test_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render(), (
        "docs/wire-schema.json is stale: run "
        "`python -m fleet.contracts.schema > docs/wire-schema.json`"
    )


def test_module_prints_the_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fleet.contracts.schema"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.stdout == render()


def test_schema_is_a_valid_json_schema_covering_every_bucket() -> None:
    schema = json.loads(render())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["buckets"]) == set(ALL_BUCKETS)
    for bucket in schema["buckets"].values():
        assert bucket["value"]["$ref"].removeprefix("#/$defs/") in schema["$defs"]
    assert set(schema["$defs"]) >= {
        "ReconcileScore",
        "PodmanScore",
        "ContainerSpec",
        "PortMapping",
        "DeploymentState",
        "Phase",
        "DeviceInfo",
        "Inventory",
        "HeartbeatPayload",
    }


@pytest.mark.parametrize(
    ("type_name", "payload"),
    [
        ("ReconcileScore", samples.score_json()),
        ("DeploymentState", samples.state_json()),
        ("DeviceInfo", samples.info_json()),
        ("HeartbeatPayload", samples.heartbeat_json()),
    ],
)
def test_valid_payloads_satisfy_the_schema(type_name: str, payload: dict[str, Any]) -> None:
    _validator(type_name).validate(payload)


@pytest.mark.parametrize(
    ("type_name", "payload"),
    [
        ("ReconcileScore", {"type": "podman", "containers": []}),
        ("ReconcileScore", {"type": "docker", "containers": [{"name": "a", "image": "b"}]}),
        ("ReconcileScore", {"type": "podman", "containers": [{"name": "A", "image": "b"}]}),
        ("ReconcileScore", {"type": "podman", "containers": [{"name": "a", "image": "b c"}]}),
        ("DeploymentState", samples.state_json() | {"device_id": "pi.01"}),
        ("DeploymentState", samples.state_json() | {"deployment": "-web"}),
        ("DeploymentState", samples.state_json() | {"phase": "Done"}),
        ("DeploymentState", samples.state_json() | {"desired_revision": -1}),
        ("HeartbeatPayload", samples.heartbeat_json() | {"device_id": "a" * 254}),
        ("HeartbeatPayload", samples.heartbeat_json() | {"seq": -1}),
    ],
)
def test_invalid_payloads_break_the_schema_too(type_name: str, payload: dict[str, Any]) -> None:
    assert list(_validator(type_name).iter_errors(payload))
