"""Reports always fit the wire: a message that encodes too large is cut, never raised."""

from __future__ import annotations

import datetime as dt

import pytest

from fleet.actors.agent.reporting import DeviceReporter, malformed_message
from fleet.contracts import (
    DeploymentName,
    DeploymentState,
    DeviceId,
    Phase,
    decode_heartbeat,
    decode_score,
    decode_state,
)
from fleet.contracts.limits import MAX_MESSAGE_LENGTH, MAX_STATE_BYTES
from fleet.errors import ContractError


class Publisher:
    def __init__(self) -> None:
        self.values: list[tuple[str, str, bytes]] = []

    def publish(self, bucket: str, key: str, value: bytes, *, replay: bool = True) -> None:
        self.values.append((bucket, key, value))


def state(message: str) -> DeploymentState:
    return DeploymentState(
        device_id=DeviceId("pi-01"),
        deployment=DeploymentName("web"),
        phase=Phase.FAILED,
        desired_revision=3,
        message=message,
        updated_at=dt.datetime.now(dt.UTC),
        running_revision=2,
    )


def test_a_message_within_the_character_bound_but_too_large_encoded_is_cut() -> None:
    publisher = Publisher()
    reporter = DeviceReporter(device_id=DeviceId("pi-01"), instance_id="i1", publisher=publisher)
    reporter.publish_state(state("\x01" * MAX_MESSAGE_LENGTH))  # 6 bytes each in JSON
    [(_, key, value)] = publisher.values
    assert key == "state.pi-01.web"
    assert len(value) <= MAX_STATE_BYTES
    sent = decode_state(value)
    assert (sent.phase, sent.desired_revision, sent.running_revision) == (Phase.FAILED, 3, 2)
    assert sent.message


def test_heartbeats_name_the_instance_and_count_up() -> None:
    publisher = Publisher()
    reporter = DeviceReporter(device_id=DeviceId("pi-01"), instance_id="abc", publisher=publisher)
    reporter.heartbeat()
    reporter.heartbeat()
    beats = [decode_heartbeat(value) for _, _, value in publisher.values]
    assert [(b.instance_id, b.seq) for b in beats] == [("abc", 0), ("abc", 1)]


def test_a_report_is_written_at_its_key_and_reads_back_as_reported() -> None:
    publisher = Publisher()
    reporter = DeviceReporter(device_id=DeviceId("pi-01"), instance_id="i1", publisher=publisher)
    sent = state("port 8080 is taken")
    reporter.publish_state(sent)
    [(bucket, key, value)] = publisher.values
    assert (bucket, key) == ("device-state", "state.pi-01.web")
    assert decode_state(value) == sent


def test_a_malformed_entry_is_reported_naming_the_field_within_the_bound() -> None:
    with pytest.raises(ContractError) as caught:
        decode_score(b'{"type":"podman","containers":[{"name":"Web","image":"busybox"}]}')
    message = malformed_message("web", caught.value)
    assert message.startswith("the desired state of 'web' is malformed: ")
    assert "containers[0].name" in message
    huge = ContractError("x" * 10_000, field="containers[0].env[...]")
    assert len(malformed_message("web", huge)) == MAX_MESSAGE_LENGTH
