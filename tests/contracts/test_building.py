"""Structs built in Python hold the same rules as decoded ones: no invalid value can be
built and then written to the wire."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from fleet.contracts import (
    ContainerSpec,
    DeploymentState,
    DeviceId,
    HeartbeatPayload,
    Inventory,
    PodmanScore,
    PortMapping,
)
from fleet.errors import ContractError, InvalidName

from . import samples


def _state(**changes: Any) -> DeploymentState:
    fields: dict[str, Any] = {
        "device_id": "pi-01",
        "deployment": "web",
        "phase": "Running",
        "desired_revision": 1,
        "message": None,
        "updated_at": samples.AT,
    } | changes
    return DeploymentState(**fields)


@pytest.mark.parametrize(
    ("changes", "field", "kind"),
    [
        ({"device_id": "pi.01"}, "device_id", InvalidName),
        ({"deployment": "Web"}, "deployment", InvalidName),
        ({"phase": "running"}, "phase", ContractError),
        ({"desired_revision": -1}, "desired_revision", ContractError),
        ({"desired_revision": True}, "desired_revision", ContractError),
        ({"updated_at": dt.datetime(2025, 1, 1)}, "updated_at", ContractError),
        ({"updated_at": "2025-01-01T00:00:00Z"}, "updated_at", ContractError),
    ],
)
def test_state_rules(changes: dict[str, Any], field: str, kind: type[Exception]) -> None:
    with pytest.raises(kind) as caught:
        _state(**changes)
    assert isinstance(caught.value, ContractError)
    assert caught.value.field == field


def test_container_rules() -> None:
    with pytest.raises(InvalidName, match="container name 'Web'") as caught:
        ContainerSpec(name="Web", image="b")
    assert caught.value.field == "name"
    with pytest.raises(ContractError, match="image") as caught_image:
        ContainerSpec(name="a", image="")
    assert caught_image.value.field == "image"
    with pytest.raises(ContractError, match="restart_policy"):
        ContainerSpec(name="a", image="b", restart_policy="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ContractError, match="env name"):
        ContainerSpec(name="a", image="b", env={"A=B": "c"})


def test_port_rules() -> None:
    with pytest.raises(ContractError, match=r"host_port must be an integer in 1\.\.65535, got 0"):
        PortMapping(host_port=0, container_port=80)
    with pytest.raises(ContractError, match="container_port"):
        PortMapping(host_port=80, container_port=70000)
    with pytest.raises(ContractError, match="protocol"):
        PortMapping(host_port=80, container_port=80, protocol="sctp")  # type: ignore[arg-type]


def test_score_rules() -> None:
    with pytest.raises(ContractError, match="at least one container"):
        PodmanScore(containers=[])
    with pytest.raises(ContractError, match="'a' appears twice") as caught:
        PodmanScore(
            containers=[ContainerSpec(name="a", image="b"), ContainerSpec(name="a", image="c")]
        )
    assert caught.value.field == "containers[1].name"


def test_inventory_and_heartbeat_rules() -> None:
    inventory = samples.info().inventory
    with pytest.raises(ContractError, match="cpus"):
        Inventory(**{**_fields(inventory), "cpus": 0})
    with pytest.raises(ContractError, match="seq"):
        HeartbeatPayload(device_id=DeviceId.try_new("d"), at=samples.AT, seq=-1)
    with pytest.raises(InvalidName):
        HeartbeatPayload(device_id="d d", at=samples.AT, seq=0)  # type: ignore[arg-type]


def _fields(struct: Any) -> dict[str, Any]:
    return {name: getattr(struct, name) for name in struct.__struct_fields__}


def test_the_longest_message_fits_a_report() -> None:
    """A message at its bound, made of the characters that escape longest, still fits the
    device-state bound: the two limits agree."""
    from fleet.contracts import DeploymentName, DeploymentState, DeviceId, Phase, encode_state
    from fleet.contracts.limits import MAX_MESSAGE_LENGTH, MAX_STATE_BYTES

    state = DeploymentState(
        device_id=DeviceId("d" * 253),
        deployment=DeploymentName("n" * 63),
        phase=Phase.FAILED,
        desired_revision=2**63 - 1,
        message="\x01" * MAX_MESSAGE_LENGTH,
        updated_at=dt.datetime.now(dt.UTC),
        running_revision=2**63 - 1,
    )
    assert len(encode_state(state)) <= MAX_STATE_BYTES
