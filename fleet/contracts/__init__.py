"""The wire contract of fleet: what any agent or operator, in any language, must speak.

Everything here is pure: names, key formats, Kubernetes literals, frozen msgspec
structs and their JSON codecs. docs/contracts.md describes the same wire in prose and
docs/wire-schema.json as JSON Schema. This package must never do I/O and never import
anything of fleet's but :mod:`fleet.errors`.
"""

from __future__ import annotations

from .codec import (
    SCORE_HASH_LENGTH,
    convert_score,
    decode_heartbeat,
    decode_info,
    decode_score,
    decode_state,
    encode_heartbeat,
    encode_info,
    encode_score,
    encode_state,
    score_hash,
)
from .heartbeat import HeartbeatPayload
from .info import DeviceInfo, Inventory
from .keys import (
    ALL_BUCKETS,
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    desired_state_key,
    desired_state_key_filter,
    device_heartbeat_key,
    device_info_key,
    device_state_key,
    parse_desired_state_key,
    parse_device_heartbeat_key,
    parse_device_info_key,
    parse_device_state_key,
)
from .kube import (
    API_VERSION,
    CRD_GROUP,
    CRD_NAME_DEPLOYMENT,
    CRD_NAME_DEVICE,
    CRD_VERSION,
    FINALIZER,
    KIND_DEPLOYMENT,
    KIND_DEVICE,
    PLURAL_DEPLOYMENTS,
    PLURAL_DEVICES,
    SHORT_NAME_DEPLOYMENT,
    SHORT_NAME_DEVICE,
    SINGULAR_DEPLOYMENT,
    SINGULAR_DEVICE,
)
from .labels import is_label_key, is_label_value
from .names import DeploymentName, DeviceId
from .score import (
    PODMAN_SCORE_TYPE,
    ContainerSpec,
    PodmanScore,
    PortMapping,
    PortProtocol,
    ReconcileScore,
    RestartPolicy,
)
from .state import DeploymentState, Phase

__all__ = [
    "ALL_BUCKETS",
    "API_VERSION",
    "BUCKET_DESIRED_STATE",
    "BUCKET_DEVICE_HEARTBEAT",
    "BUCKET_DEVICE_INFO",
    "BUCKET_DEVICE_STATE",
    "CRD_GROUP",
    "CRD_NAME_DEPLOYMENT",
    "CRD_NAME_DEVICE",
    "CRD_VERSION",
    "FINALIZER",
    "KIND_DEPLOYMENT",
    "KIND_DEVICE",
    "PLURAL_DEPLOYMENTS",
    "PLURAL_DEVICES",
    "PODMAN_SCORE_TYPE",
    "SCORE_HASH_LENGTH",
    "SHORT_NAME_DEPLOYMENT",
    "SHORT_NAME_DEVICE",
    "SINGULAR_DEPLOYMENT",
    "SINGULAR_DEVICE",
    "ContainerSpec",
    "DeploymentName",
    "DeploymentState",
    "DeviceId",
    "DeviceInfo",
    "HeartbeatPayload",
    "Inventory",
    "Phase",
    "PodmanScore",
    "PortMapping",
    "PortProtocol",
    "ReconcileScore",
    "RestartPolicy",
    "convert_score",
    "decode_heartbeat",
    "decode_info",
    "decode_score",
    "decode_state",
    "desired_state_key",
    "desired_state_key_filter",
    "device_heartbeat_key",
    "device_info_key",
    "device_state_key",
    "encode_heartbeat",
    "encode_info",
    "encode_score",
    "encode_state",
    "is_label_key",
    "is_label_value",
    "parse_desired_state_key",
    "parse_device_heartbeat_key",
    "parse_device_info_key",
    "parse_device_state_key",
    "score_hash",
]
