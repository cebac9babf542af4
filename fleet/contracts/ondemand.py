"""Asking one device, now: its container logs and a description of itself.

Why it exists: ``fleetctl logs`` and ``fleetctl describe device`` ask the agent itself,
over NATS request/reply on subjects that name the device (``fleet.device.<id>.logs``,
``fleet.device.<id>.describe``: :func:`device_request_key` is the ``<id>.<kind>`` part),
so per-device credentials decide who may ask and answer, and the device opens no port.

A request is answered by one or more messages to its reply subject, each a
:class:`LogsChunk` or a :class:`DeviceDescription`; the last one of an answer has
``done`` set. A followed log (``follow``) stays open while the requester renews it: it
sends the same request again with the ``session`` the first chunk named, within
:data:`FOLLOW_WINDOW_S`, each time with a fresh reply subject (the device may send at
most :data:`MAX_REPLIES_PER_REQUEST` messages to each). Every value here is bounded
(:data:`MAX_LOG_TAIL` lines, :data:`MAX_LOG_LINE_CHARS` characters a line, no control
character, :data:`MAX_CHUNK_BYTES` a message) and decoded bounded and total, like every
value on the bus.

What it must never do: do I/O, or accept a value whose fields it has not checked.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

import msgspec

from fleet.errors import ContractError, InvalidName

from ._checks import Timestamp, deployment_field, device_id_field, int_field, utc_field
from .codec import dec_hook, decode_bounded, enc_hook, encode_bounded
from .info import Inventory
from .labels import LABEL_RULE, check_labels
from .limits import MAX_LABELS, MAX_MESSAGE_LENGTH, MAX_TEXT_LENGTH, check_length
from .names import DeploymentName, DeviceId, check_dns_label
from .state import Phase

LOGS: Final = "logs"
DESCRIBE: Final = "describe"
RequestKind = Literal["logs", "describe"]
REQUEST_KINDS: Final[tuple[RequestKind, ...]] = (LOGS, DESCRIBE)

MAX_REQUEST_BYTES: Final = 4 * 1024
"""A request (logs or describe)."""
MAX_CHUNK_BYTES: Final = 64 * 1024
"""One answer message: a chunk of log lines, or a description."""
DEFAULT_LOG_TAIL: Final = 100
MAX_LOG_TAIL: Final = 1000
"""Lines of a container's past output one request may ask for."""
MAX_LOG_LINE_CHARS: Final = 1024
"""A log line is cut to this many characters (writers cut with ``…``)."""
MAX_CHUNK_LINES: Final = MAX_LOG_TAIL
MAX_DESCRIBED_DEPLOYMENTS: Final = 64
"""Deployments in one description (the first by name; ``more`` says how many were left out)."""
MAX_DESCRIBED_CONTAINERS: Final = 32
FOLLOW_WINDOW_S: Final = 10.0
"""A followed log stops unless the requester renews it within this many seconds."""
MAX_FOLLOW_S: Final = 3600.0
"""A followed log stops after this long, renewed or not (follow again to go on)."""
MAX_REPLIES_PER_REQUEST: Final = 100
"""Messages a device sends to one reply subject at most (a requester's buffer can count on
it; a followed log's renewals each bring a fresh reply subject)."""

ErrorCode = Literal["bad-request", "not-found", "rate-limited", "busy", "unavailable", "ended"]
"""``bad-request``: the request is malformed (``message`` names the field); ``not-found``:
no such deployment or container on the device; ``rate-limited``/``busy``: ask again
later; ``unavailable``: the device cannot read it now (podman away); ``ended``: a
followed log is over (not renewed in time, its container stopped, or too long)."""

_SESSION: Final = re.compile(r"^[0-9a-f]{16}$")
SESSION_PATTERN: Final = _SESSION.pattern
_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")

SessionId = Annotated[
    str,
    msgspec.Meta(
        description="A followed log's session: 16 hex digits, named by its first chunk.",
        extra_json_schema={"pattern": SESSION_PATTERN},
    ),
]
LogLine = Annotated[
    str,
    msgspec.Meta(
        description="One line of output: no control character, at most "
        f"{MAX_LOG_LINE_CHARS} characters.",
        extra_json_schema={"maxLength": MAX_LOG_LINE_CHARS},
    ),
]
ContainerName = Annotated[
    str,
    msgspec.Meta(
        description="A container's name in its deployment's score (a DNS-1123 label).",
        extra_json_schema={"maxLength": 63},
    ),
]


def device_request_key(device_id: DeviceId, kind: RequestKind) -> str:
    """``<device>.<kind>``: the device's part of a request subject (``fleet.device.`` + it)."""
    if kind not in REQUEST_KINDS:
        raise ContractError(f"{kind!r} is not a device request ({', '.join(REQUEST_KINDS)})")
    return f"{DeviceId.try_new(device_id)}.{kind}"


def parse_device_request_key(key: str) -> tuple[DeviceId, RequestKind]:
    """Inverse of :func:`device_request_key`; :class:`ContractError` if malformed."""
    device, _, kind = key.rpartition(".") if isinstance(key, str) else ("", "", "")
    if kind not in REQUEST_KINDS or not device:
        raise ContractError(f"malformed device request key {str(key)[:200]!r}")
    try:
        return DeviceId.try_new(device), kind
    except InvalidName as exc:
        raise InvalidName(f"malformed device request key {key[:200]!r}: {exc}") from exc


def clean_log_line(line: str) -> str:
    """``line`` fit for the wire: tabs as spaces, control characters as ``?``, cut to
    :data:`MAX_LOG_LINE_CHARS` characters (``…`` last), trailing blanks dropped."""
    text = _CONTROL.sub("?", line.replace("\t", " ")).rstrip()
    if len(text) > MAX_LOG_LINE_CHARS:
        text = text[: MAX_LOG_LINE_CHARS - 1] + "\u2026"
    return text


class OnDemandError(msgspec.Struct, frozen=True, kw_only=True):
    """Why a request was not answered (in full)."""

    code: ErrorCode
    message: Annotated[str, msgspec.Meta(extra_json_schema={"maxLength": MAX_MESSAGE_LENGTH})]

    def __post_init__(self) -> None:
        check_length(self.message, field="message", limit=MAX_MESSAGE_LENGTH)


class LogsRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The last ``tail`` lines of ``container`` of ``deployment``, and with ``follow``
    what it prints next. ``container`` may be left out when the deployment has one;
    ``session`` renews a followed log."""

    deployment: DeploymentName
    container: ContainerName | None = None
    tail: Annotated[
        int, msgspec.Meta(extra_json_schema={"minimum": 0, "maximum": MAX_LOG_TAIL})
    ] = DEFAULT_LOG_TAIL
    follow: bool = False
    session: SessionId | None = None

    def __post_init__(self) -> None:
        deployment_field(self, "deployment")
        if self.container is not None:
            try:
                check_dns_label(self.container, what="container name")
            except InvalidName as exc:
                raise InvalidName(str(exc), field="container") from exc
        int_field(self, "tail", low=0, high=MAX_LOG_TAIL)
        if not isinstance(self.follow, bool):
            raise ContractError("follow must be true or false", field="follow")
        _session_field(self)


class LogsChunk(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Part of an answer to a :class:`LogsRequest`: ``lines`` in order.

    ``seq`` counts the chunks of one answer (or one followed session) from 0, so a gap
    shows a lost message; ``skipped`` lines were left out before these (more than fit,
    or printed faster than a followed log carries); ``done``: nothing follows; ``error``:
    why not (then ``lines`` is empty).
    """

    device_id: DeviceId
    seq: Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 0})]
    deployment: DeploymentName | None = None
    container: ContainerName | None = None
    lines: Annotated[
        tuple[LogLine, ...], msgspec.Meta(extra_json_schema={"maxItems": MAX_CHUNK_LINES})
    ] = ()
    skipped: Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 0})] = 0
    session: SessionId | None = None
    done: bool = False
    error: OnDemandError | None = None

    def __post_init__(self) -> None:
        device_id_field(self, "device_id")
        int_field(self, "seq", low=0)
        if self.deployment is not None:
            deployment_field(self, "deployment")
        check_length(self.container, field="container", limit=63)
        check_length(self.lines, field="lines", limit=MAX_CHUNK_LINES, what="lines")
        for i, line in enumerate(self.lines):
            if not isinstance(line, str) or len(line) > MAX_LOG_LINE_CHARS or _CONTROL.search(line):
                raise ContractError(
                    f"lines[{i}] must be at most {MAX_LOG_LINE_CHARS} characters with no "
                    "control character",
                    field=f"lines[{i}]",
                )
        int_field(self, "skipped", low=0)
        _session_field(self)


class DescribeRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Describe the device (no field yet; an empty payload means the same)."""


class ContainerDescription(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One container of a deployment, as podman says now."""

    name: ContainerName
    state: Annotated[str, msgspec.Meta(extra_json_schema={"maxLength": MAX_TEXT_LENGTH})]
    exit_code: int | None = None
    started_at: Annotated[str, msgspec.Meta(extra_json_schema={"maxLength": 64})] = ""
    revision: Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 0})] | None = None

    def __post_init__(self) -> None:
        check_length(self.name, field="name", limit=63)
        check_length(self.state, field="state", limit=MAX_TEXT_LENGTH)
        check_length(self.started_at, field="started_at", limit=64)
        if self.exit_code is not None:
            int_field(self, "exit_code", low=-(2**31), high=2**31)
        if self.revision is not None:
            int_field(self, "revision", low=0)


class DeploymentDescription(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One deployment on the device: what it last reported, its containers now, and
    the last failure it reported (which may be over)."""

    deployment: DeploymentName
    phase: Phase | None = None
    desired_revision: Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 0})] | None = None
    running_revision: Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 0})] | None = None
    message: (
        Annotated[str, msgspec.Meta(extra_json_schema={"maxLength": MAX_MESSAGE_LENGTH})] | None
    ) = None
    updated_at: Timestamp | None = None
    containers: Annotated[
        tuple[ContainerDescription, ...],
        msgspec.Meta(extra_json_schema={"maxItems": MAX_DESCRIBED_CONTAINERS}),
    ] = ()
    last_failure: (
        Annotated[str, msgspec.Meta(extra_json_schema={"maxLength": MAX_MESSAGE_LENGTH})] | None
    ) = None
    last_failure_at: Timestamp | None = None

    def __post_init__(self) -> None:
        deployment_field(self, "deployment")
        for field in ("desired_revision", "running_revision"):
            if getattr(self, field) is not None:
                int_field(self, field, low=0)
        check_length(self.message, field="message", limit=MAX_MESSAGE_LENGTH)
        check_length(self.last_failure, field="last_failure", limit=MAX_MESSAGE_LENGTH)
        check_length(
            self.containers, field="containers", limit=MAX_DESCRIBED_CONTAINERS, what="containers"
        )
        for field in ("updated_at", "last_failure_at"):
            if getattr(self, field) is not None:
                utc_field(self, field)


class DeviceDescription(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The answer to a :class:`DescribeRequest`: who the device is and what runs on it,
    as its agent knows it ``at``; ``more``: deployments left out past the bound."""

    device_id: DeviceId
    at: Timestamp
    labels: Annotated[
        dict[str, str],
        msgspec.Meta(
            description=f"Each label is {LABEL_RULE}.",
            extra_json_schema={"maxProperties": MAX_LABELS},
        ),
    ] = {}
    inventory: Inventory | None = None
    agent_version: Annotated[
        str, msgspec.Meta(extra_json_schema={"maxLength": MAX_TEXT_LENGTH})
    ] = ""
    instance_id: Annotated[str, msgspec.Meta(extra_json_schema={"maxLength": 64})] = ""
    deployments: Annotated[
        tuple[DeploymentDescription, ...],
        msgspec.Meta(extra_json_schema={"maxItems": MAX_DESCRIBED_DEPLOYMENTS}),
    ] = ()
    more: Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 0})] = 0
    done: bool = True
    error: OnDemandError | None = None

    def __post_init__(self) -> None:
        device_id_field(self, "device_id")
        utc_field(self, "at")
        check_length(self.labels, field="labels", limit=MAX_LABELS, what="labels")
        check_labels(self.labels)
        check_length(self.agent_version, field="agent_version", limit=MAX_TEXT_LENGTH)
        check_length(self.instance_id, field="instance_id", limit=64)
        check_length(
            self.deployments,
            field="deployments",
            limit=MAX_DESCRIBED_DEPLOYMENTS,
            what="deployments",
        )
        int_field(self, "more", low=0)


def _session_field(obj: LogsRequest | LogsChunk) -> None:
    value = obj.session
    if value is not None and (not isinstance(value, str) or _SESSION.fullmatch(value) is None):
        raise ContractError("session must be 16 hex digits (a-f 0-9)", field="session")


_ENCODER: Final = msgspec.json.Encoder(enc_hook=enc_hook)
_LOGS_REQUEST: Final = msgspec.json.Decoder(LogsRequest, dec_hook=dec_hook)
_DESCRIBE_REQUEST: Final = msgspec.json.Decoder(DescribeRequest, dec_hook=dec_hook)
_CHUNK: Final = msgspec.json.Decoder(LogsChunk, dec_hook=dec_hook)
_DESCRIPTION: Final = msgspec.json.Decoder(DeviceDescription, dec_hook=dec_hook)


def encode_request(request: LogsRequest | DescribeRequest) -> bytes:
    return encode_bounded(
        _ENCODER.encode(request), what="device request", max_bytes=MAX_REQUEST_BYTES
    )


def encode_answer(answer: LogsChunk | DeviceDescription) -> bytes:
    """An answer message; :class:`ContractError` if it is over :data:`MAX_CHUNK_BYTES`."""
    return encode_bounded(_ENCODER.encode(answer), what="device answer", max_bytes=MAX_CHUNK_BYTES)


def decode_logs_request(data: bytes) -> LogsRequest:
    """Decode a logs request; :class:`ContractError` if it breaks the contract."""
    return decode_bounded(_LOGS_REQUEST, data, what="logs request", max_bytes=MAX_REQUEST_BYTES)


def decode_describe_request(data: bytes) -> DescribeRequest:
    """Decode a describe request (an empty payload is ``{}``)."""
    if isinstance(data, bytes | bytearray | memoryview) and not bytes(data).strip():
        return DescribeRequest()
    return decode_bounded(
        _DESCRIBE_REQUEST, data, what="describe request", max_bytes=MAX_REQUEST_BYTES
    )


def decode_logs_chunk(data: bytes) -> LogsChunk:
    """Decode a chunk of an answer to a logs request."""
    return decode_bounded(_CHUNK, data, what="logs answer", max_bytes=MAX_CHUNK_BYTES)


def decode_description(data: bytes) -> DeviceDescription:
    """Decode the answer to a describe request."""
    return decode_bounded(_DESCRIPTION, data, what="describe answer", max_bytes=MAX_CHUNK_BYTES)
