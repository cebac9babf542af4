"""What the device last said about itself: its info, each deployment's report, failures.

Why it exists: ``fleetctl describe device`` shows a device's labels, inventory, agent
version and each deployment's phase, revision and last failure. The device already
says all of that, in the entries it publishes; :class:`SelfReports` sits in front of
the publisher and keeps the last of each (decoded with the contracts' decoders: only
what the device really published is shown), so no second owner of those facts grows in
another actor. A deployment's entry is forgotten once it reports ``Removed``; its last
``Failed`` message is kept with the time it was reported, while the deployment lives.

What it must never do: change or delay what is published, raise on the publishing
thread, or grow past the deployments the device has.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

import msgspec

from fleet.contracts import (
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    DeploymentState,
    DeviceInfo,
    Phase,
    decode_info,
    decode_state,
)
from fleet.errors import ContractError
from fleet.runtime.nats.publisher import PublisherPort

logger = logging.getLogger(__name__)


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    message: str
    at: dt.datetime


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The book at one moment (immutable: it crosses to the responder's thread)."""

    info: DeviceInfo | None
    states: dict[str, DeploymentState]
    failures: dict[str, Failure]


class SelfReports(PublisherPort):
    """A :class:`PublisherPort` that forwards everything and remembers the device's own
    info and reports. Thread-safe (reconcilers publish from their threads)."""

    def __init__(self, inner: PublisherPort) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._info: DeviceInfo | None = None
        self._states: dict[str, DeploymentState] = {}
        self._failures: dict[str, Failure] = {}

    def publish(self, bucket: str, key: str, value: bytes, *, replay: bool = True) -> None:
        self._inner.publish(bucket, key, value, replay=replay)
        try:
            if bucket == BUCKET_DEVICE_STATE:
                self._state(decode_state(value))
            elif bucket == BUCKET_DEVICE_INFO:
                info = decode_info(value)
                with self._lock:
                    self._info = info
        except ContractError as exc:  # its own entries always decode; never let it raise
            logger.debug("not kept for describe: %s", exc)

    def _state(self, state: DeploymentState) -> None:
        name = str(state.deployment)
        with self._lock:
            if state.phase is Phase.REMOVED:
                self._states.pop(name, None)
                self._failures.pop(name, None)
                return
            self._states[name] = state
            if state.phase is Phase.FAILED and state.message:
                self._failures[name] = Failure(message=state.message, at=state.updated_at)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                info=self._info, states=dict(self._states), failures=dict(self._failures)
            )
