"""The four KV buckets of the wire and the key inside each, with their inverse parsers.

Keys are dot-separated NATS subject tokens, which is why device ids and deployment
names may never contain ``.``, ``*``, ``>`` or whitespace (see :mod:`.names`):

====================  ===================================  ======================
bucket                key                                  value
====================  ===================================  ======================
``desired-state``     ``<device>.<deployment>``            ``ReconcileScore``
``device-info``       ``info.<device>``                    ``DeviceInfo``
``device-state``      ``state.<device>.<deployment>``      ``DeploymentState``
``device-heartbeat``  ``heartbeat.<device>``               ``HeartbeatPayload``
====================  ===================================  ======================

This module must never do I/O or import anything of fleet's but :mod:`fleet.errors`.
"""

from __future__ import annotations

from typing import Final

from fleet.errors import ContractError, InvalidName

from .names import DeploymentName, DeviceId

BUCKET_DESIRED_STATE: Final = "desired-state"
BUCKET_DEVICE_INFO: Final = "device-info"
BUCKET_DEVICE_STATE: Final = "device-state"
BUCKET_DEVICE_HEARTBEAT: Final = "device-heartbeat"
ALL_BUCKETS: Final[tuple[str, ...]] = (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    BUCKET_DEVICE_HEARTBEAT,
)

_INFO: Final = "info"
_STATE: Final = "state"
_HEARTBEAT: Final = "heartbeat"


def desired_state_key(device_id: DeviceId, deployment: DeploymentName) -> str:
    """``<device>.<deployment>`` in ``desired-state``."""
    return f"{DeviceId.try_new(device_id)}.{DeploymentName.try_new(deployment)}"


def desired_state_key_filter(device_id: DeviceId) -> str:
    """``<device>.*``: every desired-state key of one device (a KV watch/subject filter)."""
    return f"{DeviceId.try_new(device_id)}.*"


def device_info_key(device_id: DeviceId) -> str:
    """``info.<device>`` in ``device-info``."""
    return f"{_INFO}.{DeviceId.try_new(device_id)}"


def device_state_key(device_id: DeviceId, deployment: DeploymentName) -> str:
    """``state.<device>.<deployment>`` in ``device-state``."""
    return f"{_STATE}.{DeviceId.try_new(device_id)}.{DeploymentName.try_new(deployment)}"


def device_state_key_filter(device_id: DeviceId) -> str:
    """``state.<device>.*``: every device-state key of one device (its reports)."""
    return f"{_STATE}.{DeviceId.try_new(device_id)}.*"


def device_heartbeat_key(device_id: DeviceId) -> str:
    """``heartbeat.<device>`` in ``device-heartbeat``."""
    return f"{_HEARTBEAT}.{DeviceId.try_new(device_id)}"


def _tokens(key: object, *, prefix: str | None, count: int, form: str) -> list[str]:
    if not isinstance(key, str):
        raise ContractError(f"key must be a string, got {type(key).__name__} {key!r}")
    tokens = key.split(".")
    if len(tokens) != count or (prefix is not None and tokens[0] != prefix):
        raise ContractError(f"malformed key {key!r}: expected {form}")
    return tokens if prefix is None else tokens[1:]


def _names(key: str, device: str, deployment: str) -> tuple[DeviceId, DeploymentName]:
    try:
        return DeviceId.try_new(device), DeploymentName.try_new(deployment)
    except InvalidName as exc:
        raise InvalidName(f"malformed key {key!r}: {exc}") from exc


def _device(key: str, device: str) -> DeviceId:
    try:
        return DeviceId.try_new(device)
    except InvalidName as exc:
        raise InvalidName(f"malformed key {key!r}: {exc}") from exc


def parse_desired_state_key(key: str) -> tuple[DeviceId, DeploymentName]:
    """Inverse of :func:`desired_state_key`; :class:`ContractError` if malformed."""
    device, deployment = _tokens(key, prefix=None, count=2, form="'<device>.<deployment>'")
    return _names(key, device, deployment)


def parse_device_state_key(key: str) -> tuple[DeviceId, DeploymentName]:
    """Inverse of :func:`device_state_key`; :class:`ContractError` if malformed."""
    device, deployment = _tokens(key, prefix=_STATE, count=3, form="'state.<device>.<deployment>'")
    return _names(key, device, deployment)


def parse_device_info_key(key: str) -> DeviceId:
    """Inverse of :func:`device_info_key`; :class:`ContractError` if malformed."""
    (device,) = _tokens(key, prefix=_INFO, count=2, form="'info.<device>'")
    return _device(key, device)


def parse_device_heartbeat_key(key: str) -> DeviceId:
    """Inverse of :func:`device_heartbeat_key`; :class:`ContractError` if malformed."""
    (device,) = _tokens(key, prefix=_HEARTBEAT, count=2, form="'heartbeat.<device>'")
    return _device(key, device)
