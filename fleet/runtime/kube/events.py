"""Kubernetes Events: what the operator tells, and the rules that keep them few.

Why it exists: ``kubectl describe`` shows a resource's Events, and people read them to
learn why a Deployment is not Ready or when a Device went dark. An operator that posts one
Event per change floods the API server (etcd keeps every Event for an hour), so every
note passes three rules here before the recorder (:mod:`.event_recorder`) sends it:

* **coalescing**: one note waits per (object, reason); a newer note of the same reason
  replaces it (latest wins), and a key is sent at most once per ``interval``: 1,000
  devices failing in a burst become one ``DevicesFailed`` now and one, with the final
  count, an interval later, never 1,000;
* **rate limits**: a token bucket per involved object (client-go's spam filter: a burst
  of 25, then one per 5 minutes) and one for the whole process (``qps``, ``burst``);
* **a bound**: at most ``capacity`` notes wait; a note of a new key past it is dropped
  and counted.

:class:`Correlator` then says whether a note repeats an Event already posted (same
object, type, reason and message: client-go's EventCorrelator), which is patched
(``count`` + 1, ``lastTimestamp``) rather than created again.

Plain and synchronous, with an injected clock: no I/O, no threads. What it must never do:
hold more than ``capacity`` waiting notes, or more than ``capacity`` correlated Events.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Final, Literal

import msgspec

__all__ = [
    "COMPONENT",
    "DEFAULT_LIMITS",
    "Correlator",
    "EventLimits",
    "EventNote",
    "EventQueue",
    "ObjectRef",
    "Posted",
    "TokenBucket",
]

COMPONENT: Final = "fleet-operator"
MESSAGE_MAX: Final = 1024  # events.k8s.io's bound on a note; core/v1 keeps it readable too

EventType = Literal["Normal", "Warning"]


class ObjectRef(msgspec.Struct, frozen=True, kw_only=True):
    """The involved object; ``uid`` empty: the recorder looks it up (a Device's)."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None  # None: cluster-scoped
    uid: str = ""


class EventNote(msgspec.Struct, frozen=True, kw_only=True):
    """One thing worth an Event, as an actor saw it at ``at`` (epoch seconds)."""

    obj: ObjectRef
    type: EventType
    reason: str
    message: str
    at: float

    @property
    def key(self) -> tuple[str, str, str | None, str, str]:
        """What coalesces: one waiting note per object and reason."""
        o = self.obj
        return (o.kind, o.name, o.namespace, o.uid, self.reason)


class EventLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The bounds of :class:`EventQueue` (the defaults are the operator's)."""

    interval: float = 30.0  # one Event per (object, reason) per interval
    object_burst: int = 25  # per involved object (client-go's EventSourceObjectSpamFilter)
    object_refill: float = 300.0  # seconds per token, past the burst
    qps: float = 10.0  # the whole process
    burst: int = 50
    capacity: int = 4096  # notes waiting; and correlated Events remembered


DEFAULT_LIMITS: Final = EventLimits()


class TokenBucket:
    """``burst`` tokens, one more each ``1 / rate`` seconds."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, *, rate: float, burst: int, now: float) -> None:
        self._rate, self._burst = rate, float(burst)
        self._tokens, self._stamp = float(burst), now

    def _refill(self, now: float) -> float:
        self._tokens = min(self._burst, self._tokens + max(0.0, now - self._stamp) * self._rate)
        self._stamp = now
        return self._tokens

    def ready_in(self, now: float) -> float:
        """Seconds until a token is there (0: now)."""
        tokens = self._refill(now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self._rate

    def take(self, now: float) -> bool:
        if self._refill(now) < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def full(self, now: float) -> bool:
        return self._refill(now) >= self._burst


Key = tuple[str, str, str | None, str, str]
ObjKey = tuple[str, str, str | None, str]


class EventQueue:
    """The waiting notes, coalesced and rate-limited (see the module docstring).

    Two lanes, taken in order: namespaced objects' notes (a Deployment's Ready, its
    failures) first, then cluster-scoped ones (Devices), so a site going dark never
    delays what a Deployment says.
    """

    def __init__(
        self, limits: EventLimits = DEFAULT_LIMITS, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._waiting: dict[Key, EventNote] = {}
        self._lanes: tuple[collections.deque[Key], collections.deque[Key]] = (
            collections.deque(),
            collections.deque(),
        )
        self._sent: dict[Key, float] = {}  # when each key was last taken
        self._objects: dict[ObjKey, TokenBucket] = {}
        self._global = TokenBucket(rate=limits.qps, burst=limits.burst, now=clock())
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def put(self, note: EventNote) -> bool:
        """Queue ``note`` (replacing a waiting one of its key); False: dropped, full."""
        key = note.key
        if key in self._waiting:
            self._waiting[key] = note
            return True
        if len(self._waiting) >= self.limits.capacity:
            self.dropped += 1
            return False
        self._waiting[key] = note
        self._lanes[0 if note.obj.namespace is not None else 1].append(key)
        return True

    def take(self) -> tuple[EventNote | None, float | None]:
        """The next note due now, or (None, seconds until one may be: None if none waits)."""
        now = self._clock()
        wait = self._global.ready_in(now)
        if not self._waiting:
            return None, None
        if wait > 0:
            return None, wait
        soonest: float | None = None
        for lane in self._lanes:
            for _ in range(len(lane)):
                key = lane.popleft()
                due = self._due(key, now)
                if due <= 0.0:
                    self._global.take(now)
                    self._objects[key[:4]].take(now)
                    self._sent[key] = now
                    self._prune(now)
                    return self._waiting.pop(key), None
                lane.append(key)  # not yet: keep its place in the rotation
                soonest = due if soonest is None else min(soonest, due)
        return None, soonest

    def _due(self, key: Key, now: float) -> float:
        sent = self._sent.get(key)
        interval_left = 0.0 if sent is None else sent + self.limits.interval - now
        bucket = self._objects.get(key[:4])
        if bucket is None:
            limits = self.limits
            bucket = TokenBucket(rate=1.0 / limits.object_refill, burst=limits.object_burst,
                                 now=now)  # fmt: skip
            self._objects[key[:4]] = bucket
        return max(interval_left, bucket.ready_in(now))

    def retry(self, note: EventNote) -> None:
        """``note`` could not be sent (the API was unavailable): wait again, unless a newer
        note of its key already does. It counts as sent (its interval runs)."""
        if note.key not in self._waiting:
            self.put(note)

    def _prune(self, now: float) -> None:
        """Forget the keys and objects with nothing to remember: bounded memory."""
        bound = 2 * self.limits.capacity
        if len(self._sent) > bound:
            interval = self.limits.interval
            self._sent = {k: t for k, t in self._sent.items() if now - t < interval}
            if len(self._sent) > bound:
                self._sent.clear()  # a flood: intervals restart, memory stays bounded
        if len(self._objects) > bound:
            self._objects = {k: b for k, b in self._objects.items() if not b.full(now)}
            if len(self._objects) > bound:
                self._objects.clear()  # a flood: limits restart, memory stays bounded


class Posted(msgspec.Struct, kw_only=True):
    """An Event this process created: where it is, and how often it was told."""

    namespace: str
    name: str
    count: int
    first: str  # firstTimestamp


class Correlator:
    """The Events already posted, by (object, type, reason, message): the last
    ``capacity`` of them (least recently told forgotten first)."""

    def __init__(self, *, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._posted: collections.OrderedDict[tuple[object, ...], Posted] = (
            collections.OrderedDict()
        )

    @staticmethod
    def _key(note: EventNote) -> tuple[object, ...]:
        o = note.obj
        return (o.api_version, o.kind, o.namespace, o.name, o.uid, note.type, note.reason,
                note.message)  # fmt: skip

    def find(self, note: EventNote) -> Posted | None:
        """The Event ``note`` repeats (to patch), if one was posted and is remembered."""
        posted = self._posted.get(self._key(note))
        if posted is not None:
            self._posted.move_to_end(self._key(note))
        return posted

    def remember(self, note: EventNote, posted: Posted) -> None:
        key = self._key(note)
        self._posted[key] = posted
        self._posted.move_to_end(key)
        while len(self._posted) > self._capacity:
            self._posted.popitem(last=False)

    def forget(self, note: EventNote) -> None:
        self._posted.pop(self._key(note), None)


def cut(message: str, limit: int = MESSAGE_MAX) -> str:
    """``message`` within ``limit`` characters (an ellipsis says it was cut)."""
    return message if len(message) <= limit else message[: limit - 1] + "\u2026"
