"""When a device asks again: the pace of enrollment requests and the moment to renew.

Why it exists: thousands of devices may ask to join, or renew, at once (a fleet powered
on together, a server restart), and a device refused today may be approved tomorrow.
These rules are kept apart from the code that sends, as plain functions and one small
class, so they are tested without a server:

* ``pending``: ask again after the operator's ``retry_after_s`` (bounded to
  :data:`MIN_RETRY`..:data:`MAX_PENDING_RETRY`), with jitter;
* ``denied`` or ``refused``: keep asking, slowly (``slow`` seconds, at least the operator's
  ``retry_after_s``): a person may approve later;
* no answer, an unreachable server, a malformed reply: back off 1, 2, 4 ... 60 s, with
  jitter, until any valid reply comes back;
* renew once :data:`DEFAULT_RENEW_AFTER` of the credential's lifetime has passed, give
  or take :data:`RENEW_JITTER` of it, so devices approved together do not renew together.

What it must never do: return a delay that is negative, unbounded, or the same for every
device (jitter is what spreads a fleet out).
"""

from __future__ import annotations

import random
from typing import Final

from fleet.contracts import EnrollmentReply

MIN_RETRY: Final = 0.1
MAX_PENDING_RETRY: Final = 300.0
SLOW_RETRY: Final = 300.0  # denied or refused: every five minutes
FIRST_BACKOFF: Final = 1.0
MAX_BACKOFF: Final = 60.0
JITTER: Final = 0.2  # each delay is spread by +-20%
DEFAULT_RENEW_AFTER: Final = 2 / 3
RENEW_JITTER: Final = 0.05  # +-5% of the lifetime


class RetryPace:
    """How long to wait before asking again, after a reply (or none)."""

    def __init__(
        self,
        *,
        slow: float = SLOW_RETRY,
        first_backoff: float = FIRST_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        rng: random.Random | None = None,
    ) -> None:
        self.slow = slow
        self._first = first_backoff
        self._max = max_backoff
        self._backoff = first_backoff
        self._rng = rng or random.Random()

    def after(self, reply: EnrollmentReply | None) -> float:
        """The delay before the next request, given the last ``reply`` (None: none came,
        or it was malformed)."""
        if reply is None:
            delay, self._backoff = self._backoff, min(self._backoff * 2, self._max)
            return self._jitter(delay)
        self._backoff = self._first
        if reply.status == "pending":
            return self._jitter(min(max(reply.retry_after_s, MIN_RETRY), MAX_PENDING_RETRY))
        return self._jitter(max(self.slow, reply.retry_after_s))  # denied, refused

    def _jitter(self, delay: float) -> float:
        return max(MIN_RETRY, delay * self._rng.uniform(1 - JITTER, 1 + JITTER))


def renew_at(
    *,
    issued_at: float,
    expires_at: float,
    fraction: float = DEFAULT_RENEW_AFTER,
    rng: random.Random | None = None,
) -> float:
    """The time (seconds since the epoch) to renew a credential valid from ``issued_at``
    to ``expires_at``: ``fraction`` of its lifetime, +- :data:`RENEW_JITTER` of it, and
    always before it expires."""
    lifetime = max(0.0, expires_at - issued_at)
    spread = (rng or random.Random()).uniform(-RENEW_JITTER, RENEW_JITTER)
    share = min(max(fraction + spread, 0.05), 0.95)
    return issued_at + lifetime * share
