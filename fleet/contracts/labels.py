"""Device label rules: the Kubernetes label syntax, because the operator matches
Deployment selectors against these labels and mirrors them onto Device resources.

- key: an optional prefix and ``/``, then a name. The prefix is a DNS-1123 subdomain
  (at most 253 characters of dot-separated DNS-1123 labels); the name is 1..63
  characters of ``A-Z a-z 0-9 - _ .``, starting and ending with a letter or digit.
- value: empty, or 1..63 characters with the same rule as a key's name.

This module must never do I/O or import anything of fleet's but :mod:`fleet.errors`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from fleet.errors import ContractError

LABEL_NAME_MAX: Final = 63
LABEL_PREFIX_MAX: Final = 253
LABEL_RULE: Final = (
    "a Kubernetes label: key '[prefix/]name' where prefix is a DNS-1123 subdomain "
    "(<= 253 characters) and name is 1..63 characters of letters, digits, '-', '_', '.' "
    "starting and ending with a letter or digit; value empty or following the name rule"
)

_NAME: Final = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN: Final = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)


def _is_name(text: str) -> bool:
    return len(text) <= LABEL_NAME_MAX and _NAME.fullmatch(text) is not None


def is_label_key(key: str) -> bool:
    """Whether ``key`` is a valid Kubernetes label key."""
    prefix, slash, name = key.rpartition("/")
    if slash and (
        len(prefix) > LABEL_PREFIX_MAX
        or _DNS_SUBDOMAIN.fullmatch(prefix) is None
        or any(len(part) > LABEL_NAME_MAX for part in prefix.split("."))
    ):
        return False
    return _is_name(name)


def is_label_value(value: str) -> bool:
    """Whether ``value`` is a valid Kubernetes label value (empty is valid)."""
    return value == "" or _is_name(value)


def check_labels(labels: Mapping[str, str], *, field: str = "labels") -> None:
    """Raise :class:`ContractError` naming the first bad key or value in ``labels``."""
    for key, value in labels.items():
        if not isinstance(key, str) or not is_label_key(key):
            raise ContractError(f"invalid label key {key!r}: must be {LABEL_RULE}", field=field)
        if not isinstance(value, str) or not is_label_value(value):
            raise ContractError(
                f"invalid value {value!r} for label {key!r}: must be {LABEL_RULE}", field=field
            )
