"""Whole entries: key and value checked together; builders write what decoders accept."""

from __future__ import annotations

import pytest

from fleet.contracts import (
    DeploymentName,
    DeviceId,
    Phase,
    decode_desired_entry,
    decode_heartbeat_entry,
    decode_info_entry,
    decode_report_entry,
    desired_entry,
    heartbeat_entry,
    info_entry,
    report_entry,
)
from fleet.contracts.limits import MAX_MESSAGE_LENGTH
from fleet.errors import ContractError

from . import samples

D1, D2, WEB = DeviceId("d1"), DeviceId("d2"), DeploymentName("web")


def test_builders_write_what_the_decoders_read() -> None:
    key, value = info_entry(
        device=D1, labels={"site": "lab"}, inventory=samples.info().inventory,
        agent_version="1", at=samples.AT,
    )  # fmt: skip
    entry = decode_info_entry(key, value)
    assert (key, entry.device, entry.info.labels if entry.info else None) == (
        "info.d1", D1, {"site": "lab"},
    )  # fmt: skip
    key, value = heartbeat_entry(device=D1, at=samples.AT, seq=3, instance_id="abc")
    beat = decode_heartbeat_entry(key, value).beat
    assert beat is not None
    assert (key, beat.seq, beat.instance_id) == ("heartbeat.d1", 3, "abc")
    key, value = report_entry(
        device=D1, deployment=WEB, phase=Phase.FAILED, desired_revision=4, at=samples.AT,
        message="x" * (MAX_MESSAGE_LENGTH + 10), running_revision=2,
    )  # fmt: skip
    state = decode_report_entry(key, value).state
    assert state is not None
    assert key == "state.d1.web"
    assert (state.running_revision, len(state.message or "")) == (2, MAX_MESSAGE_LENGTH)
    key, value = desired_entry(device=D1, deployment=WEB, score=samples.score())
    assert decode_desired_entry(key, value).score == samples.score()


def test_a_value_naming_another_device_is_a_forgery() -> None:
    _, value = info_entry(
        device=D2, labels={}, inventory=samples.info().inventory, agent_version="1",
        at=samples.AT,
    )  # fmt: skip
    with pytest.raises(ContractError, match=r"'info\.d1'.*names device 'd2'"):
        decode_info_entry("info.d1", value)
    _, value = heartbeat_entry(device=D2, at=samples.AT, seq=1)
    with pytest.raises(ContractError, match="names device 'd2'"):
        decode_heartbeat_entry("heartbeat.d1", value)
    _, value = report_entry(
        device=D1, deployment=DeploymentName("api"), phase=Phase.RUNNING, desired_revision=1,
        at=samples.AT,
    )  # fmt: skip
    with pytest.raises(ContractError, match="d1/api, the key does not"):
        decode_report_entry("state.d1.web", value)


def test_deletions_decode_without_a_value_and_bad_keys_are_refused() -> None:
    assert decode_info_entry("info.d1", b"", deleted=True).info is None
    assert decode_heartbeat_entry("heartbeat.d1", b"", deleted=True).beat is None
    assert decode_report_entry("state.d1.web", b"", deleted=True).state is None
    assert decode_desired_entry("d1.web", b"", deleted=True).score is None
    with pytest.raises(ContractError, match="malformed key"):
        decode_info_entry("info.d1.extra", b"", deleted=True)
    with pytest.raises(ContractError, match=r"entry 'd1\.web'.*not valid JSON"):
        decode_desired_entry("d1.web", b"{")
