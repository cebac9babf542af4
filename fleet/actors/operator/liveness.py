"""Whether one device is reachable: its last heartbeat, against the liveness timeout.

Why it exists: a device is ``unreachable`` (and counts only there in every Deployment's
aggregate) when its last heartbeat (``at`` in device-heartbeat, the device's clock) is
older than the liveness timeout, or when it never sent one. The device actor owns this
fact for its device; :class:`Liveness` is its rule, kept apart so that it can be tested
with plain numbers.

Going silent is noticed without a sweep over the fleet: while a device is online one
liveness check is pending for it, in the fleet index's liveness book
(:mod:`.liveness_book`, which also decides which beats the device actor hears); when it
comes due the actor's :meth:`Liveness.check` takes the device offline. So a device costs
one check per timeout, however often it beats. (:meth:`Liveness.wake_in` is the same rule
for a keeper that arms its own check.)

Plain and synchronous: no I/O, no timers of its own. What it must never do: ask for a
second check while one is pending.
"""

from __future__ import annotations

import datetime


class Liveness:
    __slots__ = ("_armed", "at", "online", "timeout", "when")

    def __init__(self, *, timeout: float) -> None:
        self.timeout = timeout
        self.at: float | None = None  # the last heartbeat, epoch seconds (None: none)
        self.when: datetime.datetime | None = None  # the same, as shown (kept if deleted)
        self.online = False
        self._armed = False

    def beat(self, at: float, when: datetime.datetime | None, *, now: float) -> bool:
        """A heartbeat (``when`` None: its key was deleted); whether ``online`` changed."""
        was = self.online
        if when is None:
            self.at = None
            self.online = False
        else:
            self.at, self.when = at, when
            self.online = now - at <= self.timeout
        return self.online != was

    def check(self, *, now: float) -> bool:
        """The pending check is due; whether ``online`` changed (it went offline)."""
        self._armed = False
        if self.online and (self.at is None or now - self.at > self.timeout):
            self.online = False
            return True
        return False

    def wake_in(self, *, now: float) -> float | None:
        """Seconds until the next check, if one should be armed now (at most one is)."""
        if not self.online or self._armed or self.at is None:
            return None
        self._armed = True
        return max(0.0, self.at + self.timeout - now)
