"""Validated names: the device ids and deployment names that become wire keys.

Both are ``str`` subclasses, so they work as dict keys, in f-strings and as JSON
strings, but an instance can only exist if its value passed the rule: ``DeviceId(s)``
and ``DeviceId.try_new(s)`` both validate (``try_new`` is the documented spelling),
and there is no unchecked constructor. Decoding a wire payload builds them through the
same rule (see :mod:`fleet.contracts.codec`).

Rules (also in docs/contracts.md):

- ``DeploymentName``: a DNS-1123 label: 1..63 characters, lowercase ``a-z``, digits
  and ``-``, starting and ending with a letter or digit. It is a Kubernetes object name
  and the last token of a desired-state key.
- ``DeviceId``: 1..253 characters from ``A-Z a-z 0-9 _ -``, starting with a letter or
  digit. It is a NATS subject token (so never ``.``, ``*``, ``>``, whitespace or empty)
  and a podman label value; ``-`` first would read as a command-line flag.

This module must never do I/O or import anything of fleet's but :mod:`fleet.errors`.
"""

from __future__ import annotations

import re
from typing import Final, Self

from fleet.errors import InvalidName

DNS_LABEL_MAX: Final = 63
DNS_LABEL_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_LABEL_RULE: Final = (
    "a DNS-1123 label: 1..63 characters, lowercase letters, digits and '-', "
    "starting and ending with a letter or digit"
)

DEVICE_ID_MAX: Final = 253
DEVICE_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
DEVICE_ID_RULE: Final = (
    "1..253 characters from A-Z, a-z, 0-9, '_' and '-', starting with a letter or digit "
    "(no '.', '*', '>' or whitespace: it is a NATS subject token)"
)

_DNS_LABEL: Final = re.compile(DNS_LABEL_PATTERN)
_DEVICE_ID: Final = re.compile(DEVICE_ID_PATTERN)


def check_dns_label(value: object, *, what: str) -> str:
    """Return ``value`` if it is a DNS-1123 label, else raise :class:`InvalidName`.

    ``what`` names the thing in the message ("deployment name", "container name").
    """
    if not isinstance(value, str):
        raise InvalidName(f"{what} must be a string, got {type(value).__name__} {value!r}")
    # fullmatch, not match: '$' would accept a trailing newline.
    if len(value) > DNS_LABEL_MAX or _DNS_LABEL.fullmatch(value) is None:
        raise InvalidName(f"invalid {what} {value!r}: must be {DNS_LABEL_RULE}")
    return value


def check_device_id(value: object) -> str:
    """Return ``value`` if it follows the device id rule, else raise :class:`InvalidName`."""
    if not isinstance(value, str):
        raise InvalidName(f"device id must be a string, got {type(value).__name__} {value!r}")
    if len(value) > DEVICE_ID_MAX or _DEVICE_ID.fullmatch(value) is None:
        raise InvalidName(f"invalid device id {value!r}: must be {DEVICE_ID_RULE}")
    return value


# Names already validated, shared: a fleet decodes the same 100,000 device ids over and
# over (every report names one twice), and a shared immutable instance costs nothing
# more. Bounded, so a stream of distinct garbage cannot grow it without limit.
_KNOWN_MAX: Final = 262_144
_DEVICE_IDS: dict[str, DeviceId] = {}
_DEPLOYMENT_NAMES: dict[str, DeploymentName] = {}


class DeploymentName(str):
    """A deployment's name: a DNS-1123 label. Build it with :meth:`try_new`."""

    __slots__ = ()

    def __new__(cls, value: str) -> Self:
        known = _DEPLOYMENT_NAMES.get(value) if isinstance(value, str) else None
        if known is not None and cls is DeploymentName:
            return known  # type: ignore[return-value]
        made = super().__new__(cls, check_dns_label(value, what="deployment name"))
        if cls is DeploymentName and len(_DEPLOYMENT_NAMES) < _KNOWN_MAX:
            _DEPLOYMENT_NAMES[str(made)] = made
        return made

    @classmethod
    def try_new(cls, value: str) -> Self:
        """Validate ``value``; raise :class:`~fleet.errors.InvalidName` naming it and the rule."""
        return cls(value)

    def __repr__(self) -> str:
        return f"DeploymentName({str(self)!r})"


class DeviceId(str):
    """A device's id, safe as a NATS subject token. Build it with :meth:`try_new`."""

    __slots__ = ()

    def __new__(cls, value: str) -> Self:
        known = _DEVICE_IDS.get(value) if isinstance(value, str) else None
        if known is not None and cls is DeviceId:
            return known  # type: ignore[return-value]
        made = super().__new__(cls, check_device_id(value))
        if cls is DeviceId and len(_DEVICE_IDS) < _KNOWN_MAX:
            _DEVICE_IDS[str(made)] = made
        return made

    @classmethod
    def try_new(cls, value: str) -> Self:
        """Validate ``value``; raise :class:`~fleet.errors.InvalidName` naming it and the rule."""
        return cls(value)

    def __repr__(self) -> str:
        return f"DeviceId({str(self)!r})"
