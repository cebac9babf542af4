"""The heartbeat reader: a beat that differs from its key's last one only in ``at`` and
``seq`` is read without the full decode, and reads the same as the full decode would; any
other value (hostile ones included) meets the contract's decoder."""

from __future__ import annotations

import contextlib
import datetime
import logging

import pytest

from fleet.actors.operator import messages as m
from fleet.actors.operator.beat_reader import BeatReader
from fleet.actors.operator.skiplog import SkipLog
from fleet.actors.operator.sources import _beats
from fleet.contracts import AgentHealth, DeviceId, HeartbeatPayload, encode_heartbeat
from fleet.errors import ContractError
from fleet.runtime.nats.kv import KvEntry

KEY = "heartbeat.d1"
T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=datetime.UTC)


def value(seq: int, *, instance: str = "run-a", reconciles: int = 1, device: str = "d1") -> bytes:
    return encode_heartbeat(
        HeartbeatPayload(
            device_id=DeviceId(device),
            at=T0 + datetime.timedelta(seconds=10 * seq),
            seq=seq,
            instance_id=instance,
            health=AgentHealth(reconciles=reconciles),
        )
    )


def test_a_repeat_is_read_without_a_full_decode_and_reads_the_same() -> None:
    reader, fresh = BeatReader(), BeatReader()
    first = reader.read(KEY, value(0))
    assert not first.repeat
    for seq in range(1, 5):
        fast = reader.read(KEY, value(seq))
        full = fresh.read(KEY, value(seq))
        fresh.forget(KEY)
        assert fast.repeat
        assert (fast.device, fast.when, fast.instance, fast.health) == (
            full.device, full.when, full.instance, full.health,
        )  # fmt: skip
    assert reader.full == 1


@pytest.mark.parametrize(
    "changed", [value(1, instance="run-b"), value(1, reconciles=2)], ids=["instance", "health"]
)
def test_a_new_instance_or_new_counters_are_decoded_in_full(changed: bytes) -> None:
    reader = BeatReader()
    reader.read(KEY, value(0))
    beat = reader.read(KEY, changed)
    assert not beat.repeat
    assert reader.full == 2


def test_a_value_of_the_same_shape_with_a_broken_timestamp_meets_the_full_decoder() -> None:
    reader = BeatReader()
    reader.read(KEY, value(0))
    good = value(1)
    bad = good.replace(b'"at":"2026-01-01T12:00:10', b'"at":"2026-13-01T12:00:10')
    assert bad != good
    with pytest.raises(ContractError):
        reader.read(KEY, bad)
    assert reader.read(KEY, good).repeat  # the shape is still the last good one


@pytest.mark.parametrize(
    "hostile",
    [
        # the same beat with "at" written twice: JSON readers disagree on which counts
        b'{"device_id":"d1","at":"2026-01-01T12:00:00Z","seq":1,"instance_id":"run-a",'
        b'"health":{"reconciles":1},"at":"2020-01-01T00:00:00Z"}',
        # a key spelled with an escape
        b'{"device_id":"d1","\\u0061t":"2026-01-01T12:00:00Z","at":"2026-01-01T12:00:00Z",'
        b'"seq":1,"instance_id":"run-a","health":{"reconciles":1}}',
    ],
    ids=["duplicate-at", "escaped-key"],
)
def test_a_value_not_in_the_contracts_own_encoding_never_becomes_a_shape(hostile: bytes) -> None:
    reader = BeatReader()
    with contextlib.suppress(ContractError):
        reader.read(KEY, hostile)
    assert len(reader) == 0  # nothing kept: each such value is decoded in full
    before = reader.full
    with contextlib.suppress(ContractError):
        reader.read(KEY, hostile)
    assert reader.full >= before  # read again the long way (or refused again)


def test_a_value_naming_another_device_is_refused_even_after_a_good_shape() -> None:
    reader = BeatReader()
    reader.read(KEY, value(0))
    with pytest.raises(ContractError, match="names device"):
        reader.read(KEY, value(1, device="d2"))


def test_the_reader_is_bounded() -> None:
    reader = BeatReader(limit=10)
    for i in range(25):
        reader.read(f"heartbeat.d{i}", value(0, device=f"d{i}"))
    assert len(reader) <= 10


def test_the_source_marks_repeats_and_skips_hostile_bytes_naming_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = BeatReader()
    skips = SkipLog(logging.getLogger("test.beats"), what="entries of device-heartbeat")

    def batch(*values: bytes) -> tuple[m.Beat, ...]:
        entries = tuple(
            KvEntry(bucket="device-heartbeat", key=KEY, value=v, revision=i + 1)
            for i, v in enumerate(values)
        )
        msg = _beats(entries, skips, reader)
        assert isinstance(msg, m.BeatsSeen)
        return msg.beats

    (first,) = batch(value(0))
    assert not first.repeat
    assert first.health is not None
    (second,) = batch(value(1))
    assert second.repeat
    assert second.instances == ("run-a",)
    assert second.health == first.health
    (abab,) = batch(value(2), value(3, instance="run-b"), value(4))  # A, B, A in one batch
    assert abab.instances == ("run-a", "run-b", "run-a")
    assert not abab.repeat
    with caplog.at_level(logging.WARNING, logger="test.beats"):
        assert batch(b"\xff not json") == ()
        skips.flush()
    assert KEY in caplog.text


def test_a_known_shape_with_a_date_out_of_range_is_refused_by_the_full_decoder() -> None:
    reader = BeatReader()
    first = value(0)
    reader.read(KEY, first)
    at = T0.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
    assert at in first
    far = first.replace(at, b"0001-01-01T00:00:00+01:00")  # astimezone overflows
    with pytest.raises(ContractError):
        reader.read(KEY, far)
