"""What the device writes about itself: each deployment's state, its info, its heartbeat.

Why it exists: the device actor and every reconciler thread report through here, so the
wire's bounds are kept in one place. A report's message is cut to
:data:`~fleet.contracts.limits.MAX_MESSAGE_LENGTH` characters by the reconciler; here a
report whose *encoded* form is still over the device-state bound (a message of 4,096
characters that each encode to six bytes, like the control characters a container can
print) is cut further rather than dropped. Every heartbeat names this run of the agent
(``instance_id``, random at start), so two processes beating under one device id show.

What it must never do: raise on a reconciler's thread (a report that cannot be encoded
is logged and shortened, never an exception), or block (the publisher only schedules).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

import msgspec

from fleet import __version__
from fleet.contracts import (
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    DeploymentState,
    DeviceId,
    DeviceInfo,
    HeartbeatPayload,
    device_heartbeat_key,
    device_info_key,
    device_state_key,
    encode_heartbeat,
    encode_info,
    encode_state,
)
from fleet.errors import ContractError
from fleet.runtime.host.inventory import read_inventory
from fleet.runtime.nats.publisher import PublisherPort

logger = logging.getLogger(__name__)

_SHORTER = (1024, 256, 0)  # message lengths tried when a report encodes too large


class DeviceReporter:
    """Thread-safe: ``publish_state`` is called on reconciler threads."""

    def __init__(self, *, device_id: DeviceId, instance_id: str, publisher: PublisherPort) -> None:
        self._device = device_id
        self.instance_id = instance_id
        self._publisher = publisher
        self._seq = 0

    def publish_state(self, state: DeploymentState) -> None:
        key = device_state_key(state.device_id, state.deployment)
        value: bytes | None
        try:
            value = encode_state(state)
        except ContractError as exc:
            value = self._shortened(state, exc)
        if value is not None:
            self._publisher.publish(BUCKET_DEVICE_STATE, key, value)

    def _shortened(self, state: DeploymentState, exc: ContractError) -> bytes | None:
        logger.warning(
            "%s/%s: report too large (%s); shortening its message",
            state.device_id,
            state.deployment,
            exc,
        )
        message = state.message or ""
        for length in _SHORTER:
            text = message[:length].encode("ascii", "replace").decode() if length else None
            try:
                return encode_state(msgspec.structs.replace(state, message=text))
            except ContractError:
                continue
        logger.error("%s/%s: report dropped: %s", state.device_id, state.deployment, exc)
        return None

    def publish_info(
        self, *, labels: Mapping[str, str], runtime_name: str, runtime_version: str
    ) -> None:
        info = DeviceInfo(
            device_id=self._device,
            labels=dict(labels),
            inventory=read_inventory(runtime_name=runtime_name, runtime_version=runtime_version),
            agent_version=__version__,
            updated_at=dt.datetime.now(dt.UTC),
        )
        self._publisher.publish(
            BUCKET_DEVICE_INFO, device_info_key(self._device), encode_info(info)
        )

    def heartbeat(self) -> None:
        beat = HeartbeatPayload(
            device_id=self._device,
            at=dt.datetime.now(dt.UTC),
            seq=self._seq,
            instance_id=self.instance_id,
        )
        self._seq += 1
        self._publisher.publish(
            BUCKET_DEVICE_HEARTBEAT,
            device_heartbeat_key(self._device),
            encode_heartbeat(beat),
            replay=False,
        )
