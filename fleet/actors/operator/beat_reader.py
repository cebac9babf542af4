"""Reads heartbeat values, decoding in full only those that may say something new.

Why it exists: an agent's beats differ from one another in ``at`` and ``seq`` only, until
its run or its counters change; at 100,000 devices beating every 10 s, decoding and
validating every one in full (msgspec, then the contract's checks) was a large share of
what a heartbeat cost the operator. A :class:`BeatReader` keeps, per key, the shape of
the last value it decoded in full: the value with its ``"at":"…","seq":N`` pair cut out
(where it was, and a hash of the rest). A value of the same shape is the same beat at
a later time: only its timestamp is read (the contract's RFC 3339 form, by msgspec, then
taken to UTC) and its sequence number; its device, instance id and health counters are
those of the last full decode. Anything else (a first beat, another instance id, changed
counters, another layout, bytes the pattern does not match) is decoded in full, checked
against the key, and becomes the key's shape.

Hostile bytes: the shortcut applies only to a value whose every byte outside the pair
equals a value of the same key that passed the full decode and was in the contract's own
encoding (msgspec's: each field once, no escapes), and the pair's pattern admits
only an RFC 3339 timestamp (digits and ``-:.TZ+``, no escapes) and a decimal 0..10^18: a
value that passes it decodes, in full, to the same beat. Everything else meets the
contract's decoder and its :class:`~fleet.errors.ContractError`.

Plain and synchronous; one per heartbeat source. What it must never do: accept a value
the full decoder would refuse, or grow beyond ``limit`` keys (it starts afresh).
"""

from __future__ import annotations

import datetime
import re
from typing import Final

import msgspec

from fleet.contracts import DeviceId, decode_heartbeat_entry, encode_heartbeat
from fleet.errors import ContractError

_PAIR: Final = re.compile(
    rb'"at":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d))",'
    rb'"seq":(0|[1-9]\d{0,17})(?=[,}])'
)
_WHEN: Final = msgspec.json.Decoder(datetime.datetime)


class Read(msgspec.Struct, frozen=True, kw_only=True):
    """What one heartbeat value says; ``repeat``: only ``at`` and ``seq`` are new."""

    device: DeviceId
    when: datetime.datetime
    instance: str | None
    health: tuple[int, ...] | None  # the counters, when it carried them and an instance id
    repeat: bool


class _Shape(msgspec.Struct, frozen=True):
    start: int  # where the pair began
    rest: int  # hash of the value without the pair (with where it was)
    device: DeviceId
    instance: str | None
    health: tuple[int, ...] | None


class BeatReader:
    def __init__(self, *, limit: int = 1_000_000) -> None:
        self._shapes: dict[str, _Shape] = {}
        self._limit = limit
        self.full = 0  # values decoded in full (for tests and benchmarks)

    def __len__(self) -> int:
        return len(self._shapes)

    def read(self, key: str, value: bytes) -> Read:
        """The beat in ``value`` of ``key``; :class:`ContractError` if it breaks the contract."""
        found = _PAIR.search(value)
        shape = self._shapes.get(key)
        if found is not None and shape is not None and found.start() == shape.start:
            start, end = found.span()
            # hash(tuple) of the two slices: no copy of the value joined back together
            if hash((value[:start], value[end:])) == shape.rest:
                when = _utc(found.group(1))
                if when is not None:
                    return Read(device=shape.device, when=when, instance=shape.instance,
                                health=shape.health, repeat=True)  # fmt: skip
        beat = decode_heartbeat_entry(key, value).beat
        self.full += 1
        assert beat is not None  # not a delete marker: those never reach the reader
        health = beat.health
        counters = None if health is None or beat.instance_id is None else health.counters()
        # A shape is kept only of a value in the contract's own encoding: one "at", one
        # "seq", no escapes, no key twice; so the rest of a later value of that shape is too.
        if found is not None and encode_heartbeat(beat) == value:
            start, end = found.span()
            if len(self._shapes) >= self._limit:
                self._shapes.clear()
            self._shapes[key] = _Shape(start, hash((value[:start], value[end:])),
                                       beat.device_id, beat.instance_id, counters)  # fmt: skip
        else:
            self._shapes.pop(key, None)
        return Read(device=beat.device_id, when=beat.at, instance=beat.instance_id,
                    health=counters, repeat=False)  # fmt: skip

    def forget(self, key: str) -> None:
        """The key was deleted: its next value is decoded in full."""
        self._shapes.pop(key, None)


def _utc(raw: bytes) -> datetime.datetime | None:
    try:
        when = _WHEN.decode(b'"' + raw + b'"')
        if when.tzinfo is None:
            return None
        return when if when.tzinfo is datetime.UTC else when.astimezone(datetime.UTC)
    except (msgspec.DecodeError, OverflowError, ValueError):
        return None  # not a date the full decoder takes either: it says why


__all__ = ["BeatReader", "ContractError", "Read"]
