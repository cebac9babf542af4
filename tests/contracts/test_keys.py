"""Key formats of each bucket and their parsers."""

from __future__ import annotations

import pytest

from fleet.contracts import (
    DeploymentName,
    DeviceId,
    desired_state_key,
    desired_state_key_filter,
    device_heartbeat_key,
    device_info_key,
    device_state_key,
    parse_desired_state_key,
    parse_device_heartbeat_key,
    parse_device_info_key,
    parse_device_state_key,
)
from fleet.errors import ContractError, InvalidName

DEVICE = DeviceId.try_new("pi-01")
DEPLOYMENT = DeploymentName.try_new("web")


def test_keys_have_the_fixed_formats() -> None:
    assert desired_state_key(DEVICE, DEPLOYMENT) == "pi-01.web"
    assert device_info_key(DEVICE) == "info.pi-01"
    assert device_state_key(DEVICE, DEPLOYMENT) == "state.pi-01.web"
    assert device_heartbeat_key(DEVICE) == "heartbeat.pi-01"
    assert desired_state_key_filter(DEVICE) == "pi-01.*"


def test_parsers_invert_the_builders_and_return_validated_names() -> None:
    device, deployment = parse_desired_state_key(desired_state_key(DEVICE, DEPLOYMENT))
    assert (type(device), type(deployment)) == (DeviceId, DeploymentName)
    assert (device, deployment) == (DEVICE, DEPLOYMENT)
    assert parse_device_state_key(device_state_key(DEVICE, DEPLOYMENT)) == (DEVICE, DEPLOYMENT)
    assert type(parse_device_info_key("info.pi-01")) is DeviceId
    assert parse_device_info_key(device_info_key(DEVICE)) == DEVICE
    assert parse_device_heartbeat_key(device_heartbeat_key(DEVICE)) == DEVICE


def test_builders_refuse_unvalidated_bad_names() -> None:
    with pytest.raises(InvalidName):
        desired_state_key("pi.01", DEPLOYMENT)  # type: ignore[arg-type]
    with pytest.raises(InvalidName):
        device_state_key(DEVICE, "Web")  # type: ignore[arg-type]
    with pytest.raises(InvalidName):
        device_info_key("*")  # type: ignore[arg-type]
    with pytest.raises(InvalidName):
        device_heartbeat_key(">")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("parser", "key"),
    [
        (parse_desired_state_key, ""),
        (parse_desired_state_key, "pi-01"),
        (parse_desired_state_key, "pi-01.web.extra"),
        (parse_desired_state_key, "pi-01."),
        (parse_desired_state_key, ".web"),
        (parse_desired_state_key, "pi-01.Web"),
        (parse_desired_state_key, "pi 01.web"),
        (parse_device_state_key, "pi-01.web"),
        (parse_device_state_key, "status.pi-01.web"),
        (parse_device_state_key, "state.pi-01"),
        (parse_device_state_key, "state.pi-01.web.x"),
        (parse_device_state_key, "state.pi-01.-web"),
        (parse_device_info_key, "pi-01"),
        (parse_device_info_key, "info."),
        (parse_device_info_key, "info.pi-01.x"),
        (parse_device_info_key, "heartbeat.pi-01"),
        (parse_device_heartbeat_key, "info.pi-01"),
        (parse_device_heartbeat_key, "heartbeat.*"),
        (parse_device_heartbeat_key, "heartbeat"),
    ],
)
def test_parsers_reject_malformed_keys_naming_the_key(parser: object, key: str) -> None:
    assert callable(parser)
    with pytest.raises(ContractError) as caught:
        parser(key)
    assert repr(key) in str(caught.value)


def test_parsers_reject_non_string_keys() -> None:
    with pytest.raises(ContractError, match="key must be a string"):
        parse_device_info_key(b"info.pi-01")  # type: ignore[arg-type]
