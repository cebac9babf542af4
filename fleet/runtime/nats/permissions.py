"""What each identity on the bus may publish and subscribe to: the fleet's authorization.

Why it exists: with per-identity credentials (docs/security.md) nats-server enforces
these lists on every message, so they *are* the boundary between devices. A device may
use exactly the subjects its agent uses (docs/agent.md, "Authorization"): the live
subscription on its desired keys, the direct gets and the named consumer of its own
reads, its info, state and heartbeat puts, its own heartbeat (the duplicate-agent
watch) and its inbox. Every subject below carries the device's id, so no allowed
subject names another device's key. The operator may do everything in the fleet's
account; ``fleetctl`` reads.

Every subject is spelled by :mod:`fleet.runtime.nats.subjects` and every key comes from
:mod:`fleet.contracts`; this module only chooses.

What it must never do: spell a subject, do I/O, or allow a device a subject that does
not carry its id (the two consumer-name wildcards are explained where they are made).
"""

from __future__ import annotations

import msgspec

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    DeviceId,
    desired_state_key_filter,
    device_heartbeat_key,
    device_info_key,
    device_state_key_filter,
)
from fleet.runtime.nats import subjects
from fleet.runtime.nats.buckets import BUCKETS

OPERATOR = "operator"
FLEETCTL = "fleetctl"


class Permission(msgspec.Struct, frozen=True, kw_only=True):
    """Subjects (wildcards allowed) an identity may, and may not, use in one direction."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


class Permissions(msgspec.Struct, frozen=True, kw_only=True):
    """What one identity may publish and subscribe to, and the inbox prefix its
    connection must use (its replies and deliveries only arrive there)."""

    name: str
    pub: Permission
    sub: Permission
    inbox_prefix: str


def device_permissions(device_id: DeviceId) -> Permissions:
    """Exactly what ``device_id``'s agent uses, each subject carrying its id.

    * ``$JS.API.DIRECT.GET.KV_desired-state.$KV.desired-state.<device>.*``: the get of
      one of its keys, and the last among them (the read's mark): a ``*`` published
      as a token matches the pattern's ``*``;
    * ``$JS.API.CONSUMER.CREATE.KV_desired-state.*.$KV.desired-state.<device>.*``: its
      reads' consumers. Any name (a wildcard is a whole token: ``feed_<device>_*``
      cannot be said), but nats-server refuses a create whose configured filter is
      not the one in the subject, so the consumer only ever holds this device's keys;
    * ``$JS.API.CONSUMER.DELETE.KV_desired-state.*``: deleting them. This one does not
      name the device: a device may delete a desired-state consumer whose name it
      knows. Names carry 32 random bits and live milliseconds, and no device may
      list consumers, so the most it could do is slow another read (docs/security.md);
    * puts of ``info.<device>``, ``state.<device>.*``, ``heartbeat.<device>``;
    * subscriptions: ``$KV.desired-state.<device>.*`` (the live feed),
      ``$KV.device-heartbeat.heartbeat.<device>`` (the duplicate-agent watch), and its
      inboxes. No stream info: the agent runs with ``create_buckets=False`` (stream info
      would list every key of a bucket with ``subjects_filter``).
    """
    device = DeviceId.try_new(device_id)
    desired = desired_state_key_filter(device)
    desired_subjects = subjects.kv_filter(BUCKET_DESIRED_STATE, desired)
    heartbeat = subjects.kv_subject(BUCKET_DEVICE_HEARTBEAT, device_heartbeat_key(device))
    inbox = subjects.inbox_prefix(device, device=True)
    return Permissions(
        name=str(device),
        pub=Permission(
            allow=(
                subjects.last_by_subject(BUCKET_DESIRED_STATE, desired),
                subjects.consumer_create_any_name(BUCKET_DESIRED_STATE, desired_subjects),
                subjects.consumer_delete_any(BUCKET_DESIRED_STATE),
                subjects.kv_subject(BUCKET_DEVICE_INFO, device_info_key(device)),
                subjects.kv_filter(BUCKET_DEVICE_STATE, device_state_key_filter(device)),
                heartbeat,
            )
        ),
        sub=Permission(allow=(desired_subjects, heartbeat, subjects.inboxes(inbox))),
        inbox_prefix=inbox,
    )


def operator_permissions() -> Permissions:
    """The operator: every bucket operation and JetStream request in the fleet's account
    (it creates and bounds the buckets, writes desired state, forgets devices), flow
    control answers for its watches, and its own inboxes."""
    inbox = subjects.inbox_prefix(OPERATOR, device=False)
    return Permissions(
        name=OPERATOR,
        pub=Permission(allow=(subjects.api_all(), subjects.kv_all(), subjects.flow_control_all())),
        sub=Permission(allow=(subjects.inboxes(inbox),)),
        inbox_prefix=inbox,
    )


def fleetctl_permissions() -> Permissions:
    """``fleetctl``: reads every bucket (stream info, direct gets, short-lived consumers
    and their flow control) and writes nothing: no ``$KV`` subject, no stream or
    consumer management beyond its own reads."""
    inbox = subjects.inbox_prefix(FLEETCTL, device=False)
    pub: list[str] = []
    for bucket in BUCKETS:
        pub += [
            subjects.stream_info(bucket),
            subjects.direct_get_all(bucket),
            subjects.consumer_create_any(bucket),
            subjects.consumer_delete_any(bucket),
            subjects.flow_control(bucket),
        ]
    return Permissions(
        name=FLEETCTL,
        pub=Permission(allow=tuple(pub)),
        sub=Permission(allow=(subjects.inboxes(inbox),)),
        inbox_prefix=inbox,
    )
