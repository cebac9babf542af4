"""What each identity on the bus may publish and subscribe to: the fleet's authorization.

Why it exists: with per-identity credentials (docs/security.md) nats-server enforces
these lists on every message, so they *are* the boundary between devices. A device may
use exactly the subjects its agent uses (docs/agent.md, "Authorization"): the live
subscription on its desired keys, the direct gets and the named consumer of its own
reads, its info, state and heartbeat puts, its own heartbeat (the duplicate-agent
watch) and its inbox, its renewal request, and the requests made of it (logs,
describe), which it may answer. Every subject below carries the device's
id, so no allowed subject names another device's key. A *bootstrap* credential (what a
device holds before it is enrolled) may only ask to join and hear the answer. The
operator may do everything in the fleet's account; its enrollment desk, on a connection
of its own, hears enrollment and renewal requests and answers each once; ``fleetctl``
reads, and asks devices for their logs and descriptions.

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
from fleet.contracts.ondemand import REQUEST_KINDS
from fleet.runtime.nats import subjects
from fleet.runtime.nats.buckets import BUCKETS

OPERATOR = "operator"
ENROLLMENT = "enrollment"
FLEETCTL = "fleetctl"
BOOTSTRAP = "bootstrap"
#: How long after a request the operator may answer it (nats-server's response
#: permission; an enrollment is answered within seconds, a slow API server included).
RESPONSE_WINDOW_NS = 60 * 1_000_000_000


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
    responses: int = 0
    """Replies it may send to each request it received (nats-server's ``resp``
    permission, for :data:`RESPONSE_WINDOW_NS`); 0: none beyond ``pub``."""


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
      would list every key of a bucket with ``subjects_filter``);
    * ``fleet.renew.<device>``: its renewal request (the answer comes to its inbox);
    * ``fleet.device.<device>.logs`` and ``.describe``: it hears the requests made of it
      (``fleetctl logs``, ``fleetctl describe device``) and answers under
      ``_INBOX_fleetctl.ask.<device>.`` (the inboxes of fleetctl's asks of this device,
      :func:`~fleet.runtime.nats.subjects.ask_inbox`). Not a response permission:
      nats-server grants one for *every* message with a reply subject delivered to the
      device, and the operator's desired-state writes carry the operator's
      acknowledgement inbox, which the device could then answer with a forged
      acknowledgement.
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
                subjects.renew(device),
                subjects.device_answers(subjects.inbox_prefix(FLEETCTL, device=False), device),
            )
        ),
        sub=Permission(
            allow=(
                desired_subjects,
                heartbeat,
                subjects.inboxes(inbox),
                *(subjects.device_request(device, kind) for kind in REQUEST_KINDS),
            )
        ),
        inbox_prefix=inbox,
    )


def bootstrap_permissions() -> Permissions:
    """What a device may do before it is enrolled: ask to join, and hear the answer.

    Publish ``fleet.enroll`` only; subscribe ``_INBOX_bootstrap.>`` only. Every bootstrap
    connection shares that prefix, so one may see another's answers: that is harmless,
    because an answer holds a user JWT for the asker's *public* key, useless without
    the seed that never left the asker (docs/security.md).
    """
    prefix = subjects.BOOTSTRAP_INBOX_PREFIX
    return Permissions(
        name=BOOTSTRAP,
        pub=Permission(allow=(subjects.ENROLL,)),
        sub=Permission(allow=(subjects.inboxes(prefix),)),
        inbox_prefix=prefix,
    )


def operator_permissions() -> Permissions:
    """The operator: every bucket operation and JetStream request in the fleet's account
    (it creates and bounds the buckets, writes desired state, forgets devices), flow
    control answers for its watches, and its own inboxes.

    No response permission: nats-server would track one for every message delivered to
    it with a reply subject (each watched entry), which at 100,000 devices x 3 cost the
    server 7.5 CPU-seconds and 200 MB (docs/benchmarks.md); the requests it answers
    come to :func:`enrollment_permissions`' connection."""
    inbox = subjects.inbox_prefix(OPERATOR, device=False)
    return Permissions(
        name=OPERATOR,
        pub=Permission(allow=(subjects.api_all(), subjects.kv_all(), subjects.flow_control_all())),
        sub=Permission(allow=(subjects.inboxes(inbox),)),
        inbox_prefix=inbox,
    )


def enrollment_permissions() -> Permissions:
    """The operator's enrollment desk: it hears enrollment and renewal requests and may
    answer each once (a response permission: it publishes to no inbox it was not asked
    from), and nothing else."""
    inbox = subjects.inbox_prefix(ENROLLMENT, device=False)
    return Permissions(
        name=ENROLLMENT,
        pub=Permission(),
        sub=Permission(allow=(subjects.inboxes(inbox), subjects.ENROLL, subjects.renew_all())),
        inbox_prefix=inbox,
        responses=1,
    )


def fleetctl_permissions() -> Permissions:
    """``fleetctl``: reads every bucket (stream info, direct gets, short-lived consumers
    and their flow control) and writes nothing: no ``$KV`` subject, no stream or
    consumer management beyond its own reads. It may ask any device for its logs and
    its description (``fleet.device.*.logs``, ``fleet.device.*.describe``)."""
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
    pub += [subjects.device_request_any(kind) for kind in REQUEST_KINDS]
    return Permissions(
        name=FLEETCTL,
        pub=Permission(allow=tuple(pub)),
        sub=Permission(allow=(subjects.inboxes(inbox),)),
        inbox_prefix=inbox,
    )
