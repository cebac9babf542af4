"""Checks shared by the wire structs' ``__post_init__``.

msgspec runs ``__post_init__`` both when Python code builds a struct and when a
decoder does, so these checks hold on both paths. A ``ContractError`` raised here
carries the field name relative to its struct; the codec prefixes the struct's path
(``containers[1]`` + ``name``). Structs are frozen: normalising a field goes through
``msgspec.structs.force_setattr``, which is safe only inside ``__post_init__``.

What it must never do: raise anything but ``ContractError``, or do I/O.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from msgspec.structs import force_setattr

from fleet.errors import ContractError, InvalidName

from .limits import MAX_INT
from .names import DeploymentName, DeviceId


def _named(exc: InvalidName, field: str) -> InvalidName:
    return InvalidName(str(exc), field=field)


def device_id_field(obj: msgspec.Struct, field: str) -> None:
    """Make ``obj.<field>`` a :class:`DeviceId` (validating a plain ``str``)."""
    value = getattr(obj, field)
    if not isinstance(value, DeviceId):
        try:
            force_setattr(obj, field, DeviceId.try_new(value))
        except InvalidName as exc:
            raise _named(exc, field) from exc


def deployment_field(obj: msgspec.Struct, field: str) -> None:
    """Make ``obj.<field>`` a :class:`DeploymentName` (validating a plain ``str``)."""
    value = getattr(obj, field)
    if not isinstance(value, DeploymentName):
        try:
            force_setattr(obj, field, DeploymentName.try_new(value))
        except InvalidName as exc:
            raise _named(exc, field) from exc


def utc_field(obj: msgspec.Struct, field: str) -> None:
    """Require a timezone-aware datetime in ``obj.<field>``; store it converted to UTC."""
    value = getattr(obj, field)
    if not isinstance(value, dt.datetime) or value.utcoffset() is None:
        shown = value.isoformat() if isinstance(value, dt.datetime) else repr(value)
        raise ContractError(
            f"{field} must be an RFC 3339 timestamp with a timezone offset ('Z' for UTC), "
            f"got {shown}",
            field=field,
        )
    if value.tzinfo is not dt.UTC:
        force_setattr(obj, field, value.astimezone(dt.UTC))


def int_field(obj: msgspec.Struct, field: str, *, low: int, high: int = MAX_INT) -> None:
    """Require an int (not a bool) in ``low..high`` in ``obj.<field>`` (a 64-bit range
    unless ``high`` says otherwise: JSON allows any number of digits, the wire does not)."""
    value = getattr(obj, field)
    if not isinstance(value, int) or isinstance(value, bool) or value < low or value > high:
        bound = f">= {low}" if high == MAX_INT else f"in {low}..{high}"
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:40]}..."
        raise ContractError(f"{field} must be an integer {bound}, got {shown}", field=field)


Timestamp = Annotated[
    dt.datetime,
    msgspec.Meta(
        description="RFC 3339 with a timezone offset; encoded in UTC ('Z').",
        extra_json_schema={"format": "date-time"},
    ),
]
"""A wire timestamp: decoders require an offset and convert it to UTC (see utc_field)."""
