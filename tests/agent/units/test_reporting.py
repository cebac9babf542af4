"""Reports always fit the wire: a message that encodes too large is cut, never raised."""

from __future__ import annotations

import datetime as dt

from fleet.actors.agent.reporting import DeviceReporter
from fleet.contracts import (
    DeploymentName,
    DeploymentState,
    DeviceId,
    Phase,
    decode_heartbeat,
    decode_state,
)
from fleet.contracts.limits import MAX_MESSAGE_LENGTH, MAX_STATE_BYTES


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
