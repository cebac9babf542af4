"""A bootstrap token's policy: whether it may approve a device, and its one use.

Why it exists: a ``BootstrapToken`` approves enrollment requests without a person (a
factory line, the demo): while it is not expired, has uses left, the device proves it
holds the secret (``<id>.<secret>``, only its SHA-256 is stored) and asks for no label
the token does not grant. :func:`check` says why not, in words a person can act on;
:func:`use` spends one use with a compare-and-swap, read again on every lost race, so
any number of devices enrolling at once can never drive ``usesLeft`` below zero, and a
device that asks again after an operator crash does not spend a second one (it is in
``usedBy`` already).

Plain and synchronous (the store blocks: this runs on the enrollment workers). What it
must never do: compare a secret in a way that leaks time, or show one.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from typing import Final

from fleet.contracts import EnrollmentRequest
from fleet.runtime.kube.client import KubeConflict
from fleet.runtime.kube.enrollment_store import TokenRecord

from .ports import EnrollmentStorePort

MAX_RACES: Final = 20


def token_id(token: str) -> str:
    return token.partition(".")[0]


def secret_hash(secret: str) -> str:
    """What a BootstrapToken stores of its secret (``spec.secretHash``)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check(
    token: TokenRecord | None, request: EnrollmentRequest, *, now: datetime.datetime
) -> str | None:
    """Why ``token`` may not approve ``request`` (None: it may, if it has a use left or
    already approved this device)."""
    presented = request.token or ""
    ident, _, secret = presented.partition(".")
    if token is None:
        return f"bootstrap token {ident} does not exist"
    if not hmac.compare_digest(secret_hash(secret), token.secret_hash):
        return f"bootstrap token {ident}: wrong secret"
    if token.expires is None or token.expires <= now:
        return f"bootstrap token {ident} expired"
    for key, value in sorted(request.labels.items()):
        if token.labels.get(key) != value:
            return f"bootstrap token {ident} does not grant label {key}={value}"
    if str(request.device_id) not in token.used_by and token.uses_left <= 0:
        return f"bootstrap token {ident} is used up"
    return None


def use(
    store: EnrollmentStorePort, request: EnrollmentRequest, *, now: datetime.datetime
) -> str | None:
    """Spend one use of the request's token for its device (none if it already spent
    one); why not, or None when the token approves it."""
    ident = token_id(request.token or "")
    device = str(request.device_id)
    for _race in range(MAX_RACES):
        token = store.get_token(ident)
        why = check(token, request, now=now)
        if why is not None:
            return why
        assert token is not None
        if device in token.used_by:
            return None
        try:
            store.consume_token(token, device)
        except KubeConflict:
            continue  # another use won: read it again
        return None
    return f"bootstrap token {ident} is busy; ask again"
