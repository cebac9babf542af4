"""When a Deployment's ``.status`` is patched: coalesced, yet prompt after a quiet spell.

Why it exists: a rollout changes a Deployment's aggregate 100,000 times; one patch per
change would flood the API server. :class:`StatusThrottle` keeps the rule: the first
change after a quiet spell is patched within ``delay``, a burst costs at most one patch per
``interval``, one patch is in flight at a time, an unchanged status is not patched, and a
failed patch is tried again (with the status rebuilt).

:class:`StatusPatches` also measures the *status lag* (``/metrics``): from the first
change its owner heard after the last patch to the acknowledgement of the patch that
shows it. A change that leaves the status as it was (nothing to patch) is not measured.

Plain and synchronous, with a clock: :class:`StatusThrottle` decides; :class:`StatusPatches`
also arms the flush timer (``Flush`` to its owner) and sends the patch (``PatchDone``),
through the ports it is given. What it must never do: let a change go unpatched (a
change during a patch in flight is patched after it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from fleet.runtime.aiokit.timers import TimerPort

from .messages import Flush, PatchDone
from .ports import DeploymentApiPort, RepliesPort

logger = logging.getLogger(__name__)


class StatusThrottle:
    def __init__(
        self, *, delay: float, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.delay = delay
        self.interval = interval
        self._clock = clock
        self._dirty = False
        self._armed = False
        self._inflight = False
        self._last_patch = float("-inf")
        self.last: dict[str, Any] | None = None  # the status last patched (None: unknown)

    @property
    def previous_ready(self) -> Mapping[str, Any] | None:
        """The Ready condition last patched (its ``lastTransitionTime`` carries over)."""
        return self.last["conditions"][0] if self.last is not None else None

    def changed(self) -> float | None:
        """Something the status shows changed: the delay after which to :meth:`flush`, or
        None when a flush is already due (or a patch in flight will be followed by one)."""
        self._dirty = True
        if self._armed or self._inflight:
            return None
        self._armed = True
        return max(self.delay, self._last_patch + self.interval - self._clock())

    def flush(self) -> bool:
        """The flush timer fired: whether a status should be built and :meth:`offer` ed."""
        self._armed = False
        if not self._dirty:
            return False
        self._dirty = False
        return True

    def offer(self, status: dict[str, Any]) -> bool:
        """Whether to patch ``status`` now (it differs from the last one patched)."""
        if status == self.last:
            return False
        self.last = status
        self._inflight = True
        return True

    def patched(self, *, error: str | None, retry: bool = True) -> float | None:
        """The patch completed (or failed: ``retry`` says whether to patch again). Returns
        the delay of the next flush, if one is due."""
        self._inflight = False
        self._last_patch = self._clock()
        if error is not None:
            self.last = None
            self._dirty = retry
        if not self._dirty:
            return None
        self._dirty = False
        return self.changed()


class StatusPatches:
    """A :class:`StatusThrottle` wired to its ports: ``owner`` is told ``Flush`` when a
    status is due, and the patch goes through ``api`` (its outcome, ``PatchDone``,
    through ``replies``)."""

    def __init__(
        self,
        key: tuple[str, str],
        *,
        api: DeploymentApiPort,
        replies: RepliesPort,
        timers: TimerPort,
        owner: Any,
        delay: float,
        interval: float,
        lag: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key, self._api, self._replies = key, api, replies
        self._timers, self._owner = timers, owner
        self.throttle = StatusThrottle(delay=delay, interval=interval, clock=clock)
        self._lag, self._clock = lag, clock
        self._since: float | None = None  # the first change not yet in a patch
        self._sent: float | None = None  # the first change in the patch in flight

    def changed(self) -> None:
        if self._since is None:
            self._since = self._clock()
        self._arm(self.throttle.changed())

    def _arm(self, delay: float | None) -> None:
        if delay is not None:
            self._timers.tell_later(self._owner, Flush(), delay=delay)

    def flush(self, build: Callable[[Mapping[str, Any] | None], dict[str, Any]]) -> None:
        """The flush timer fired: ``build`` the status (given the Ready condition last
        patched) if one is due, and patch it if it changed."""
        if not self.throttle.flush():
            return
        status = build(self.throttle.previous_ready)
        if not self.throttle.offer(status):
            self._since = None  # nothing the status shows changed
            return
        self._sent, self._since = self._since, None
        namespace, name = self._key
        self._replies.when_done(
            self._api.patch_deployment_status(namespace=namespace, name=name, status=status),
            on_result=lambda _r: PatchDone(error=None),
            on_error=lambda exc: PatchDone(error=str(exc)),
        )

    def patched(self, outcome: PatchDone, *, retry: bool) -> None:
        sent, self._sent = self._sent, None
        if outcome.error is not None:
            logger.debug("deployment %s/%s: status patch failed: %s", *self._key, outcome.error)
            if sent is not None and retry:  # still to be shown, by the next patch
                self._since = sent if self._since is None else min(sent, self._since)
        elif sent is not None and self._lag is not None:
            self._lag(self._clock() - sent)
        self._arm(self.throttle.patched(error=outcome.error, retry=retry))
