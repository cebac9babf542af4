"""Every NATS subject and header name fleet speaks, spelled here and nowhere else.

Why it exists: the KV buckets are JetStream streams, and speaking to them means
subjects (``$KV.<bucket>.<key>``, the stream ``KV_<bucket>``, the ``$JS.API`` requests),
headers (``KV-Operation``, ``Nats-Expected-Last-Subject-Sequence``, ``Status``) and the
``$JS.ACK`` reply subject of every delivery. Written by hand in seven modules they
drifted; here each has one spelling, and the parsers of what the server sends back are
total: anything else is a :class:`~fleet.runtime.nats.transport.MalformedReply`.

Keys are not built here: they come from :mod:`fleet.contracts` (``desired_state_key``
and its siblings). This module only checks that a key or a key filter is a valid run
of subject tokens before it becomes part of a subject, so a bad key is refused by name
instead of breaking the protocol line it would be written into.

What it must never do: do I/O, or know what a key means.
"""

from __future__ import annotations

import re
import secrets
from typing import NamedTuple

from fleet.contracts import DeviceId
from fleet.contracts.ondemand import (
    REQUEST_KINDS,
    RequestKind,
    device_request_key,
    parse_device_request_key,
)
from fleet.errors import BusError, ContractError
from fleet.runtime.nats.transport import MalformedReply

# -- headers -------------------------------------------------------------------------

KV_OPERATION = "KV-Operation"  # absent on a put; "DEL" or "PURGE" on a marker
KV_DELETE = "DEL"
KV_PURGE = "PURGE"
EXPECTED_LAST_SUBJECT_SEQUENCE = "Nats-Expected-Last-Subject-Sequence"
STATUS = "Status"  # an inline status ("NATS/1.0 404 ..."), as the clients put it
DESCRIPTION = "Description"
SEQUENCE = "Nats-Sequence"  # a direct get's stream sequence: the entry's revision
LAST_CONSUMER = "Nats-Last-Consumer"  # an idle heartbeat: the last consumer sequence sent
CONSUMER_STALLED = "Nats-Consumer-Stalled"  # an idle heartbeat: flow control to answer

STATUS_CONTROL = "100"  # idle heartbeat or flow control request
STATUS_NOT_FOUND = "404"
STATUS_TIMEOUT = "408"
STATUS_NO_RESPONDERS = "503"

# -- keys and KV subjects ------------------------------------------------------------

# nats-py's KV key rule, plus no empty token; filters may use the wildcards.
_KEY = re.compile(r"[-/_=a-zA-Z0-9]+(?:\.[-/_=a-zA-Z0-9]+)*")
_FILTER = re.compile(r"(?:[-/_=a-zA-Z0-9]+|\*)(?:\.(?:[-/_=a-zA-Z0-9]+|\*))*(?:\.>)?|>")
_NAME = re.compile(r"[-_a-zA-Z0-9]+")  # bucket and consumer names
valid_key = _KEY.fullmatch  # truthy when a key is a valid run of subject tokens


def _checked_bucket(bucket: str) -> str:
    if not _NAME.fullmatch(bucket):
        raise BusError(f"{bucket!r} is not a valid bucket name")
    return bucket


def stream(bucket: str) -> str:
    """The stream that holds ``bucket``: ``KV_<bucket>``."""
    return f"KV_{_checked_bucket(bucket)}"


def kv_prefix(bucket: str) -> str:
    """``$KV.<bucket>.``: what every subject of the bucket starts with."""
    return f"$KV.{_checked_bucket(bucket)}."


def kv_subject(bucket: str, key: str) -> str:
    """``$KV.<bucket>.<key>``: where a write of ``key`` is published."""
    return kv_prefix(bucket) + checked_key(key)


def checked_key(key: str) -> str:
    """``key``, if it is a valid run of subject tokens (:func:`kv_prefix` + it is a subject)."""
    if not valid_key(key):
        raise BusError(f"{key!r} is not a valid key (subject tokens of [-/_=a-zA-Z0-9])")
    return key


def kv_filter(bucket: str, key_filter: str) -> str:
    """``$KV.<bucket>.<filter>``: the keys a read or watch covers (``*``, ``>`` allowed)."""
    if not _FILTER.fullmatch(key_filter):
        raise BusError(f"{key_filter!r} is not a valid key filter")
    return kv_prefix(bucket) + key_filter


def key_of(prefix: str, subject: str) -> str:
    """The key in a delivered message's subject (``prefix``: :func:`kv_prefix`)."""
    if not subject.startswith(prefix) or len(subject) == len(prefix):
        raise MalformedReply(f"delivery subject {subject[:200]!r} is not under {prefix!r}")
    return subject[len(prefix) :]


# -- JetStream API requests ----------------------------------------------------------

_API = "$JS.API"


def stream_info(bucket: str) -> str:
    return f"{_API}.STREAM.INFO.{stream(bucket)}"


def stream_create(bucket: str) -> str:
    return f"{_API}.STREAM.CREATE.{stream(bucket)}"


def stream_update(bucket: str) -> str:
    return f"{_API}.STREAM.UPDATE.{stream(bucket)}"


def direct_get(bucket: str, key: str) -> str:
    """The direct get of ``key``'s last message (the bucket allows direct get)."""
    return f"{_API}.DIRECT.GET.{stream(bucket)}.{kv_subject(bucket, key)}"


def last_by_subject(bucket: str, key_filter: str) -> str:
    """The direct get of the last message among ``key_filter``'s keys (empty payload).

    The filter is in the subject, not in a ``last_by_subj`` payload, so that credentials
    can allow exactly one device's keys. nats-server accepts wildcards there: the reply
    is the message with the highest sequence among the matching subjects (404: none;
    checked on nats-server 2.15 by ``tests/security``). A payload on this form is refused
    (408 Bad Request), so it cannot be turned into a get by sequence.
    """
    return f"{_API}.DIRECT.GET.{stream(bucket)}.{kv_filter(bucket, key_filter)}"


def consumer_name(prefix: str) -> str:
    """A new consumer name: ``<prefix>_<8 hex digits>`` (``prefix`` cleaned of what a
    consumer name may not hold)."""
    clean = "".join(c if _NAME.fullmatch(c) else "_" for c in prefix) or "consumer"
    return f"{clean}_{secrets.token_hex(4)}"


def consumer_create(bucket: str, name: str, filter_subject: str) -> str:
    """The create request of a named consumer, its filter in the subject (as nats-py
    sends it, so that credentials can allow exactly one device's filter)."""
    if not _NAME.fullmatch(name):
        raise BusError(f"{name!r} is not a valid consumer name")
    return f"{_API}.CONSUMER.CREATE.{stream(bucket)}.{name}.{filter_subject}"


def consumer_delete(bucket: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise BusError(f"{name!r} is not a valid consumer name")
    return f"{_API}.CONSUMER.DELETE.{stream(bucket)}.{name}"


# -- permission patterns: what credentials allow (docs/security.md) ---------------------
#
# NATS wildcards are whole tokens: ``feed_dev1_*`` is a literal name, never a pattern, so
# a consumer name can only be allowed whole (``*``); the device is pinned by the filter.

ANY_TOKEN = "*"
REST = ">"


def api_all() -> str:
    """Every JetStream API request (``$JS.API.>``): the operator's."""
    return f"{_API}.{REST}"


def kv_all() -> str:
    """Every write to every bucket (``$KV.>``): the operator's."""
    return f"$KV.{REST}"


def flow_control_all() -> str:
    """Every answer to a flow control request (``$JS.FC.>``)."""
    return f"$JS.FC.{REST}"


def flow_control(bucket: str) -> str:
    """Answers to flow control requests of consumers on ``bucket``'s stream."""
    return f"$JS.FC.{stream(bucket)}.{REST}"


def direct_get_all(bucket: str) -> str:
    """Every direct get on ``bucket`` (any key, any filter)."""
    return f"{_API}.DIRECT.GET.{stream(bucket)}.{REST}"


def consumer_create_any_name(bucket: str, filter_subject: str) -> str:
    """The create of a consumer of any name whose filter is ``filter_subject``."""
    return f"{_API}.CONSUMER.CREATE.{stream(bucket)}.{ANY_TOKEN}.{filter_subject}"


def consumer_create_any(bucket: str) -> str:
    """The create of any named consumer on ``bucket`` (any filter in the subject)."""
    return f"{_API}.CONSUMER.CREATE.{stream(bucket)}.{REST}"


def consumer_delete_any(bucket: str) -> str:
    """The delete of a consumer of any name on ``bucket``'s stream."""
    return f"{_API}.CONSUMER.DELETE.{stream(bucket)}.{ANY_TOKEN}"


def inbox_prefix(owner: str, *, device: bool) -> str:
    """The inbox prefix of one identity: ``_INBOX_device_<id>`` or ``_INBOX_<service>``.

    One token, so that ``<prefix>.>`` allows exactly this identity's inboxes; devices
    have their own namespace, so no device id can name a service's inboxes.
    """
    if not _NAME.fullmatch(owner) or (not device and owner.startswith("device_")):
        raise BusError(f"{owner!r} cannot name {'a device' if device else 'a service'}'s inbox")
    return f"_INBOX_device_{owner}" if device else f"_INBOX_{owner}"


def inboxes(prefix: str) -> str:
    """Every inbox under ``prefix`` (``<prefix>.>``)."""
    return f"{prefix}.{REST}"


# -- enrollment and renewal (fleet.contracts.enrollment) --------------------------------

#: Where a new device asks to join (over the bootstrap credential, which may do nothing else).
ENROLL = "fleet.enroll"
#: The inbox prefix of bootstrap connections: their replies come back under it.
BOOTSTRAP_INBOX_PREFIX = "_INBOX_bootstrap"


def renew(device_id: str) -> str:
    """Where ``device_id`` asks for a fresh JWT, over its own credentials."""
    if not _NAME.fullmatch(device_id):
        raise BusError(f"{device_id!r} cannot name a renewal subject")
    return f"fleet.renew.{device_id}"


def renew_all() -> str:
    """Every device's renewal subject (the operator listens on it)."""
    return f"fleet.renew.{ANY_TOKEN}"


# -- device requests (fleet.contracts.ondemand) -----------------------------------------

_DEVICE_REQUESTS = "fleet.device."


def device_request(device_id: DeviceId, kind: RequestKind) -> str:
    """``fleet.device.<device>.<kind>``: where ``device_id``'s agent answers ``kind``
    (``logs``, ``describe``); only that device may listen there."""
    try:
        return _DEVICE_REQUESTS + device_request_key(device_id, kind)
    except ContractError as exc:
        raise BusError(f"no device request subject: {exc}") from exc


def device_request_any(kind: RequestKind) -> str:
    """``fleet.device.*.<kind>``: ``kind`` on every device (who may ask)."""
    if kind not in REQUEST_KINDS:
        raise BusError(f"{kind!r} is not a device request")
    return f"{_DEVICE_REQUESTS}{ANY_TOKEN}.{kind}"


def parse_device_request(subject: str) -> tuple[DeviceId, RequestKind]:
    """The device and the kind a request subject names; ``MalformedReply`` otherwise."""
    if not subject.startswith(_DEVICE_REQUESTS):
        raise MalformedReply(f"{subject[:200]!r} is not a device request subject")
    try:
        return parse_device_request_key(subject[len(_DEVICE_REQUESTS) :])
    except ContractError as exc:
        raise MalformedReply(str(exc)) from exc


ASK = "ask"
_ASK_REPLY = re.compile(
    r"_INBOX(?:_[-_a-zA-Z0-9]{1,300})?\.ask\.([A-Za-z0-9][A-Za-z0-9_-]{0,252})"
    r"\.[-_a-zA-Z0-9]{1,64}\.[0-9]{1,10}"
)


def ask_inbox(inbox: str, device: DeviceId) -> str:
    """Where the answers to one ask of ``device`` go: ``<prefix>.ask.<device>.<token>``
    for ``inbox`` = ``<prefix>.<token>`` (a transport's ``new_inbox()``); each request of
    the ask names ``<that>.<n>`` as its reply. The device's id in the inbox is what lets
    its credentials allow it to answer there and nowhere else (:func:`device_answers`)."""
    prefix, _, token = inbox.rpartition(".")
    return f"{prefix}.{ASK}.{device}.{token}"


def device_answers(prefix: str, device: DeviceId) -> str:
    """``<prefix>.ask.<device>.>``: every reply subject of asks of ``device`` made by the
    identity whose inbox prefix is ``prefix``: what the device may publish its answers to."""
    return f"{prefix}.{ASK}.{device}.{REST}"


def is_answer_inbox(reply: str, device: DeviceId) -> bool:
    """Whether ``reply`` is where an ask of ``device`` wants its answers
    (``_INBOX[_<owner>].ask.<device>.<token>.<n>``): the only subjects a device answers
    to. A requester may name any subject as its reply: a bucket's, another device's, the
    operator's acknowledgement inbox; the device drops those (its credentials refuse them
    anyway, :func:`~fleet.runtime.nats.permissions.device_permissions`)."""
    found = _ASK_REPLY.fullmatch(reply) if len(reply) <= 512 else None
    return found is not None and found.group(1) == device


def inbox_owner(reply: str) -> str:
    """The inbox prefix of an inbox (its first token): who asked, for rate limits."""
    return reply.partition(".")[0]


#: Where a system-account user pushes an updated account JWT (full resolver).
CLAIMS_UPDATE = "$SYS.REQ.CLAIMS.UPDATE"


# -- deliveries ----------------------------------------------------------------------

ACK_PREFIX = "$JS.ACK."  # what a delivery's reply subject starts with


class Delivery(NamedTuple):
    """What a JetStream delivery's reply subject says about it."""

    stream_seq: int  # the stream sequence: the entry's KV revision
    consumer_seq: int  # 1, 2, 3... per consumer: a jump is a lost message


_new_delivery = tuple.__new__  # NamedTuple's own __new__ is Python, and this runs per message


def parse_delivery(reply: str | None) -> Delivery:
    """The sequences in ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>``,
    or in the newer form with ``<domain>.<account hash>`` after ``ACK`` (11 tokens, or 12
    and more with a trailing token). The fields nats-py's ``Msg.metadata`` reads, without
    its dataclasses: that was an eighth of the operator's CPU ingesting 100,000s of reports.
    """
    tokens: list[str] = reply.split(".") if reply else []
    count = len(tokens)
    if count == 9:
        sseq, cseq = tokens[5], tokens[6]
    elif count >= 11:
        sseq, cseq = tokens[7], tokens[8]
    else:
        sseq = cseq = ""
    if sseq.isdecimal() and cseq.isdecimal() and tokens[0] == "$JS" and tokens[1] == "ACK":
        return _new_delivery(Delivery, (int(sseq), int(cseq)))
    raise MalformedReply(f"not a JetStream delivery subject: {(reply or '')[:200]!r}")
