"""The door to the responder: rate limits, per requester and overall, before any queue.

Why it exists: anyone allowed to ask (``fleetctl``'s identity, or anyone at all on a
fleet without credentials) could flood a device with requests, and each costs a podman
call on the device. The gate runs on the event loop as each request arrives, so a flood
is refused there, cheaply, and never fills the responder's mailbox: token buckets per
requester (the reply inbox's prefix: ``_INBOX_fleetctl``, ``_INBOX``) and overall, and a
bound on requests waiting for the responder. Refusals are answered ("rate-limited",
"busy") at a bounded rate too; beyond it they are dropped (the asker times out).

Plain and synchronous, no I/O. What it must never do: block, or keep state per
requester without a bound.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Final, Literal

PER_REQUESTER_RATE: Final = 5.0
"""Requests a second one requester may make, sustained (a followed log's renewals are
one every few seconds)."""
PER_REQUESTER_BURST: Final = 20.0
OVERALL_RATE: Final = 20.0
OVERALL_BURST: Final = 40.0
MAX_WAITING: Final = 16
"""Requests admitted and not yet answered; more are refused as busy."""
REFUSALS_RATE: Final = 20.0
"""Refusals answered a second; more are dropped unanswered."""
MAX_REQUESTERS: Final = 1024

Verdict = Literal["admit", "rate-limited", "busy"]


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved."""

    __slots__ = ("_at", "_burst", "_rate", "_tokens")

    def __init__(self, *, rate: float, burst: float, now: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._at = now

    def take(self, now: float) -> bool:
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Gate:
    """Decides, per request, whether it goes to the responder. Thread-safe."""

    def __init__(
        self,
        *,
        per_requester: tuple[float, float] = (PER_REQUESTER_RATE, PER_REQUESTER_BURST),
        overall: tuple[float, float] = (OVERALL_RATE, OVERALL_BURST),
        max_waiting: int = MAX_WAITING,
        refusals_rate: float = REFUSALS_RATE,
    ) -> None:
        self._per = per_requester
        self._overall_limits = overall
        self._max_waiting = max_waiting
        self._refusals_rate = refusals_rate
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._overall: TokenBucket | None = None
        self._refusals: TokenBucket | None = None
        self._waiting = 0
        self._lock = threading.Lock()
        self.refused = 0

    def admit(self, requester: str, *, now: float) -> Verdict:
        """Whether a request from ``requester`` goes on; an admitted one is waiting
        until :meth:`done`."""
        with self._lock:
            if self._overall is None:
                rate, burst = self._overall_limits
                self._overall = TokenBucket(rate=rate, burst=burst, now=now)
                self._refusals = TokenBucket(
                    rate=self._refusals_rate, burst=self._refusals_rate, now=now
                )
            bucket = self._buckets.get(requester)
            if bucket is None:
                bucket = TokenBucket(rate=self._per[0], burst=self._per[1], now=now)
                self._buckets[requester] = bucket
                while len(self._buckets) > MAX_REQUESTERS:
                    self._buckets.popitem(last=False)
            self._buckets.move_to_end(requester)
            verdict: Verdict = "admit"
            if not bucket.take(now) or not self._overall.take(now):
                verdict = "rate-limited"
            elif self._waiting >= self._max_waiting:
                verdict = "busy"
            else:
                self._waiting += 1
            if verdict != "admit":
                self.refused += 1
            return verdict

    def answer_refusal(self, *, now: float) -> bool:
        """Whether a refusal may be answered now (else it is dropped)."""
        with self._lock:
            return self._refusals is not None and self._refusals.take(now)

    def done(self) -> None:
        """An admitted request was answered (or given up)."""
        with self._lock:
            self._waiting = max(0, self._waiting - 1)
