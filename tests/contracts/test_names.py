"""Device ids and deployment names: what each rule accepts and rejects, and the message."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from fleet.contracts import DeploymentName, DeviceId
from fleet.contracts import names as names_module
from fleet.errors import ContractError, InvalidName

GOOD_DEPLOYMENTS = ["a", "0", "web", "web-1", "1-web", "a" * 63, "a-b-c", "9z"]
BAD_DEPLOYMENTS = [
    "",
    "a" * 64,
    "-web",
    "web-",
    "Web",
    "WEB",
    "we.b",
    "we*b",
    "we>b",
    "we b",
    " web",
    "web\n",
    "we_b",
    "we\tb",
    "wé",
    "we\x00b",
    "*",
    ">",
]
GOOD_DEVICES = ["a", "0", "pi-01", "Pi_01", "A" * 253, "dev-ABC_123", "b8-27-eb-00-00-01", "x-"]
BAD_DEVICES = [
    "",
    "A" * 254,
    "-pi",
    "_pi",
    "pi.01",
    "pi*",
    "pi>",
    ">",
    "*",
    "pi 01",
    "pi\t01",
    "pi\n",
    "pi\x00",
    "pi\x7f",
    "pi:01",
    "pi/01",
    "pï",
]


@pytest.mark.parametrize("value", GOOD_DEPLOYMENTS)
def test_deployment_name_accepts_dns_labels(value: str) -> None:
    name = DeploymentName.try_new(value)
    assert name == value
    assert isinstance(name, str)
    assert type(name) is DeploymentName


@pytest.mark.parametrize("value", BAD_DEPLOYMENTS)
def test_deployment_name_rejects_anything_else_naming_value_and_rule(value: str) -> None:
    with pytest.raises(InvalidName) as caught:
        DeploymentName.try_new(value)
    assert repr(value) in str(caught.value)
    assert "DNS-1123 label" in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, ContractError)


@pytest.mark.parametrize("value", GOOD_DEVICES)
def test_device_id_accepts_safe_tokens(value: str) -> None:
    device = DeviceId.try_new(value)
    assert device == value
    assert type(device) is DeviceId


@pytest.mark.parametrize("value", BAD_DEVICES)
def test_device_id_rejects_unsafe_tokens_naming_value_and_rule(value: str) -> None:
    with pytest.raises(InvalidName) as caught:
        DeviceId.try_new(value)
    assert repr(value) in str(caught.value)
    assert "NATS subject token" in str(caught.value)


@pytest.mark.parametrize("value", [None, 1, b"web", ["web"]])
def test_names_reject_non_strings(value: object) -> None:
    with pytest.raises(InvalidName, match="must be a string"):
        DeviceId.try_new(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidName, match="must be a string"):
        DeploymentName.try_new(value)  # type: ignore[arg-type]


def test_the_plain_constructor_validates_too() -> None:
    with pytest.raises(InvalidName):
        DeviceId("pi.01")
    with pytest.raises(InvalidName):
        DeploymentName("Web")


def test_names_behave_as_strings() -> None:
    device = DeviceId.try_new("pi-01")
    assert {"pi-01": 1}[device] == 1
    assert device == "pi-01"
    assert hash(device) == hash("pi-01")
    assert json.dumps({"d": device}) == '{"d": "pi-01"}'
    assert f"{device}" == "pi-01"
    assert repr(device) == "DeviceId('pi-01')"
    assert repr(DeploymentName.try_new("web")) == "DeploymentName('web')"
    assert pickle.loads(pickle.dumps(device)) == device
    assert type(copy.deepcopy(device)) is DeviceId


def test_a_name_validated_once_is_shared_and_a_bad_one_is_never_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert DeviceId("shared-dev-1") is DeviceId("shared-dev-1")
    assert DeploymentName("shared-web") is DeploymentName("shared-web")
    for _ in range(2):  # rejected every time, not only the first
        with pytest.raises(InvalidName, match="bad id"):
            DeviceId("bad id")
        with pytest.raises(InvalidName, match="Web"):
            DeploymentName("Web")
    assert "bad id" not in names_module._DEVICE_IDS


def test_the_shared_names_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(names_module, "_DEVICE_IDS", {})
    monkeypatch.setattr(names_module, "_KNOWN_MAX", 3)
    made = [DeviceId(f"bounded-{i}") for i in range(10)]
    assert len(names_module._DEVICE_IDS) == 3
    assert [str(d) for d in made] == [f"bounded-{i}" for i in range(10)]
    assert all(type(d) is DeviceId for d in made)
