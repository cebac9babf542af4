"""One encoder and one decoder per bucket, and the score hash.

Decoders turn bytes into a fully validated frozen struct or raise
:class:`~fleet.errors.ContractError` whose ``field`` is the path of the bad field
(``containers[0].image``; ``None`` when the whole payload is wrong, e.g. not JSON) and
whose message names it; they never return a half-built object. Unknown fields are
ignored so newer writers can add fields. Use these functions, not ``msgspec.json``
directly: names (:class:`DeviceId`, :class:`DeploymentName`) need the hooks below.

Decoders are bounded and total: the size and nesting depth of the bytes are checked
before they are parsed (:mod:`.limits`), and *any* input, whatever its type or content,
ends as a value or a ``ContractError``, never another exception (a ``RecursionError``
from a deeply nested value once killed the actor reading it). Encoders refuse to write
a value over its bucket's bound, so a writer learns of it before the bus does.

This module must never do I/O.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final, TypeAlias, TypeVar

import msgspec

from fleet.errors import ContractError, InvalidName

from .heartbeat import HeartbeatPayload
from .info import DeviceInfo
from .limits import (
    MAX_DEPTH,
    MAX_DESIRED_BYTES,
    MAX_DESIRED_DEPTH,
    MAX_HEARTBEAT_BYTES,
    MAX_INFO_BYTES,
    MAX_STATE_BYTES,
    check_json_bounds,
)
from .names import DeploymentName, DeviceId
from .score import SCORE_TAG_FIELD
from .scores import ReconcileScore
from .state import DeploymentState

_T = TypeVar("_T")
Buffer: TypeAlias = bytes | bytearray | memoryview
"""What a decoder accepts: a KV entry's value as nats-py hands it over."""
_NAME_TYPES: Final = (DeviceId, DeploymentName)
SCORE_HASH_LENGTH: Final = 16


def dec_hook(type_: type[Any], obj: object) -> object:
    """msgspec ``dec_hook``: build validated names from JSON strings."""
    if type_ in _NAME_TYPES and isinstance(obj, str):
        return type_(obj)  # raises InvalidName, which msgspec reports with the path
    if type_ in _NAME_TYPES:
        raise TypeError(f"Expected `str`, got `{type(obj).__name__}`")
    raise NotImplementedError(f"fleet.contracts cannot decode type {type_!r}")


def enc_hook(obj: object) -> object:
    """msgspec ``enc_hook``: names are plain JSON strings."""
    if isinstance(obj, str):
        return str(obj)
    raise NotImplementedError(f"fleet.contracts cannot encode {type(obj).__name__}")


class _Tag(msgspec.Struct):
    type: str


_ENCODER: Final = msgspec.json.Encoder(enc_hook=enc_hook)
_CANONICAL: Final = msgspec.json.Encoder(enc_hook=enc_hook, order="sorted")
_TAG_DECODER: Final = msgspec.json.Decoder(_Tag)
_SCORE_DECODER: Final = msgspec.json.Decoder(ReconcileScore, dec_hook=dec_hook)
_STATE_DECODER: Final = msgspec.json.Decoder(DeploymentState, dec_hook=dec_hook)
_INFO_DECODER: Final = msgspec.json.Decoder(DeviceInfo, dec_hook=dec_hook)
_HEARTBEAT_DECODER: Final = msgspec.json.Decoder(HeartbeatPayload, dec_hook=dec_hook)

# msgspec appends where a validation error happened: " - at `$.a[0].b`" or, for a bad
# dict key, " - at `key` in `$.labels`".
_AT: Final = re.compile(r"^(?P<reason>.*?) - at (?:`key` in )?`\$(?P<path>[^`]*)`$", re.DOTALL)
_MISSING: Final = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")


def _error(exc: msgspec.MsgspecError, *, what: str) -> ContractError:
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return ContractError(f"{what} is not valid JSON: {exc}")
    text = str(exc)
    match = _AT.match(text)
    path = match["path"].removeprefix(".") if match else ""
    reason = match["reason"] if match else text
    cause = exc.__cause__
    missing = _MISSING.match(reason)
    inner = missing["field"] if missing else None
    if isinstance(cause, ContractError) and cause.field:
        inner = cause.field
    if inner:
        path = f"{path}.{inner}" if path else inner
    kind = InvalidName if isinstance(cause, InvalidName) else ContractError
    where = f" at `{path}`" if path else ""
    return kind(f"invalid {what}{where}: {reason}", field=path or None)


def _bytes(data: object, *, what: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise ContractError(f"{what} must be bytes, got {type(data).__name__}")


def _decode(
    decoder: msgspec.json.Decoder[_T],
    data: Buffer,
    *,
    what: str,
    max_bytes: int,
    max_depth: int = MAX_DEPTH,
) -> _T:
    raw = _bytes(data, what=what)
    check_json_bounds(raw, what=what, max_bytes=max_bytes, max_depth=max_depth)
    try:
        return decoder.decode(raw)
    except msgspec.MsgspecError as exc:
        raise _error(exc, what=what) from exc
    except ContractError:
        raise
    except (RecursionError, MemoryError) as exc:  # bounded above; kept total regardless
        raise ContractError(f"{what} is too deeply nested or too large to decode") from exc
    except Exception as exc:  # total: no input may end in anything but a ContractError
        raise ContractError(f"invalid {what}: {type(exc).__name__}: {exc}") from exc


def _convert(obj: object, type_: Any, *, what: str) -> Any:
    try:
        return msgspec.convert(obj, type_, dec_hook=dec_hook)
    except msgspec.MsgspecError as exc:
        raise _error(exc, what=what) from exc
    except ContractError:
        raise
    except RecursionError as exc:
        raise ContractError(f"{what} nests too deep to convert") from exc
    except Exception as exc:  # total, as _decode
        raise ContractError(f"invalid {what}: {type(exc).__name__}: {exc}") from exc


def _bounded(data: bytes, *, what: str, max_bytes: int) -> bytes:
    if len(data) > max_bytes:
        raise ContractError(
            f"{what} would be {len(data)} bytes encoded, at most {max_bytes} allowed"
        )
    return data


def encode_score(score: ReconcileScore) -> bytes:
    """The desired-state value for ``score`` (JSON; defaults omitted); bounded in size."""
    return _bounded(_ENCODER.encode(score), what="desired-state value", max_bytes=MAX_DESIRED_BYTES)


def decode_score(data: Buffer) -> ReconcileScore:
    """Decode a desired-state value; :class:`ContractError` if it breaks the contract."""
    what = "desired-state value"
    bounds = {"max_bytes": MAX_DESIRED_BYTES, "max_depth": MAX_DESIRED_DEPTH}
    _decode(_TAG_DECODER, data, what=what, **bounds)  # the tag is required
    return _decode(_SCORE_DECODER, data, what=what, **bounds)


def convert_score(obj: object) -> ReconcileScore:
    """Validate an already-parsed score (e.g. a Deployment's ``spec.score`` dict).

    Bounded like :func:`decode_score`: the score, encoded, must fit a desired-state value.
    """
    if not isinstance(obj, dict) or SCORE_TAG_FIELD not in obj:
        shown = repr(obj) if len(repr(obj)) <= 200 else f"{repr(obj)[:200]}..."
        raise ContractError(
            f"invalid score: expected an object with a `{SCORE_TAG_FIELD}` field, got {shown}",
            field=SCORE_TAG_FIELD if isinstance(obj, dict) else None,
        )
    try:
        raw = msgspec.json.encode(obj)
    except RecursionError as exc:
        raise ContractError(
            f"invalid score: nests more than {MAX_DESIRED_DEPTH} levels deep"
        ) from exc
    except Exception as exc:  # not JSON-shaped
        raise ContractError(f"invalid score: {type(exc).__name__}: {exc}") from exc
    check_json_bounds(raw, what="score", max_bytes=MAX_DESIRED_BYTES, max_depth=MAX_DESIRED_DEPTH)
    score: ReconcileScore = _convert(obj, ReconcileScore, what="score")
    return score


def score_hash(score: ReconcileScore) -> str:
    """A stable short hash (16 hex digits) of the canonical encoding of ``score``.

    Canonical: keys sorted, defaults omitted, so equal scores hash equal however they
    were written, and adding an optional field in a later release changes no hash.
    """
    return hashlib.sha256(_CANONICAL.encode(score)).hexdigest()[:SCORE_HASH_LENGTH]


def encode_state(state: DeploymentState) -> bytes:
    """The device-state value for ``state``."""
    return _bounded(_ENCODER.encode(state), what="device-state value", max_bytes=MAX_STATE_BYTES)


def decode_state(data: Buffer) -> DeploymentState:
    """Decode a device-state value; :class:`ContractError` if it breaks the contract."""
    return _decode(_STATE_DECODER, data, what="device-state value", max_bytes=MAX_STATE_BYTES)


def encode_info(info: DeviceInfo) -> bytes:
    """The device-info value for ``info``."""
    return _bounded(_ENCODER.encode(info), what="device-info value", max_bytes=MAX_INFO_BYTES)


def decode_info(data: Buffer) -> DeviceInfo:
    """Decode a device-info value; :class:`ContractError` if it breaks the contract."""
    return _decode(_INFO_DECODER, data, what="device-info value", max_bytes=MAX_INFO_BYTES)


def encode_heartbeat(heartbeat: HeartbeatPayload) -> bytes:
    """The device-heartbeat value for ``heartbeat``."""
    return _bounded(
        _ENCODER.encode(heartbeat), what="device-heartbeat value", max_bytes=MAX_HEARTBEAT_BYTES
    )


def decode_heartbeat(data: Buffer) -> HeartbeatPayload:
    """Decode a device-heartbeat value; :class:`ContractError` if it breaks the contract."""
    return _decode(
        _HEARTBEAT_DECODER, data, what="device-heartbeat value", max_bytes=MAX_HEARTBEAT_BYTES
    )


# The bounded, total encode and decode, for the contract modules that define values of
# their own (enrollment): the same guarantees as the buckets' codecs.
decode_bounded = _decode
encode_bounded = _bounded
