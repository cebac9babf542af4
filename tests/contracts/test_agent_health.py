"""The heartbeat's optional agent counters: small on the wire (zeros left out), absent for
older agents (their beats encode byte for byte as before), and round-tripped exactly."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from fleet.contracts import (
    AGENT_HEALTH_COUNTERS,
    AgentHealth,
    DeviceId,
    HeartbeatPayload,
    decode_heartbeat,
    encode_heartbeat,
    heartbeat_entry,
)
from fleet.contracts.limits import MAX_HEARTBEAT_BYTES, MAX_INT
from fleet.contracts.names import DEVICE_ID_MAX
from fleet.errors import ContractError

AT = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
DEVICE = DeviceId("pi-01")


def test_a_beat_without_counters_is_encoded_as_before() -> None:
    _, value = heartbeat_entry(device=DEVICE, at=AT, seq=3, instance_id="a1")
    assert msgspec.json.decode(value) == {
        "device_id": "pi-01", "at": "2026-11-30T12:00:00Z", "seq": 3, "instance_id": "a1",
    }  # fmt: skip


def test_zero_counters_are_left_out_and_the_rest_round_trip() -> None:
    health = AgentHealth(reconciles=12, pulls=3, drift_repairs=1)
    _, value = heartbeat_entry(device=DEVICE, at=AT, seq=3, instance_id="a1", health=health)
    assert msgspec.json.decode(value)["health"] == {
        "reconciles": 12,
        "pulls": 3,
        "drift_repairs": 1,
    }
    beat = decode_heartbeat(value)
    assert beat.health == health
    assert beat.health.counters() == (12, 0, 3, 0, 1, 0)
    assert len(AGENT_HEALTH_COUNTERS) == len(health.counters())


def test_the_largest_counters_still_fit_a_heartbeat() -> None:
    full = AgentHealth(**dict.fromkeys(AGENT_HEALTH_COUNTERS, MAX_INT))
    longest = DeviceId("d" * DEVICE_ID_MAX)
    beat = HeartbeatPayload(
        device_id=longest, at=AT, seq=MAX_INT, instance_id="a" * 64, health=full
    )
    assert len(encode_heartbeat(beat)) <= MAX_HEARTBEAT_BYTES


@pytest.mark.parametrize("bad", [-1, True, 1.5, MAX_INT + 1])
def test_a_bad_counter_is_refused_when_built(bad: object) -> None:
    with pytest.raises(ContractError, match="pulls must be an integer"):
        AgentHealth(pulls=bad)  # type: ignore[arg-type]
