"""Telling a running swarm which devices to power off and on again.

Why it exists: the rollout scenario (``loadtest/run --scenario rollout``) takes a share of
the fleet offline before a rollout and brings it back afterwards. The devices live in
locust's processes, the scenario in the run's; the run publishes one message on the
swarm's control subject (core NATS, 127.0.0.1) and every swarm process acts on the
devices it holds: an *offline* device is stopped (no heartbeat, no report, no desired-state
feed: powered off), an *online* one is started again under the same id, as an agent
that boots (a new ``instance_id``, its feed's initial read, then live entries).

Which devices go offline is decided here too (:func:`offline_devices`), by a hash of
each id, so the run and its checker agree on them without asking the swarm.

What it must never do: carry anything but device ids, or touch a bucket.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

import msgspec


class Command(msgspec.Struct, frozen=True, kw_only=True):
    """Power ``devices`` off (``offline``) or on again (``online``)."""

    action: Literal["offline", "online"]
    devices: tuple[str, ...]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Command)


def control_subject(swarm: str) -> str:
    """The core subject a swarm's processes listen on (no bucket's, no device's)."""
    return f"loadtest.control.{swarm}"


def encode(command: Command) -> bytes:
    return _encoder.encode(command)


def decode(data: bytes) -> Command:
    """A command; ``msgspec.ValidationError``/``DecodeError`` for anything else."""
    return _decoder.decode(data)


def offline_devices(devices: Iterable[str], rate: float) -> list[str]:
    """Exactly ``round(rate * n)`` of ``devices``, chosen by a hash of each id."""
    ordered = sorted(
        devices, key=lambda d: hashlib.blake2b(f"offline/{d}".encode(), digest_size=8).digest()
    )
    return sorted(ordered[: round(rate * len(ordered))])
