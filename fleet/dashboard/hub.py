"""Where the fleet's changes come in (any thread) and leave as a published version.

Why it exists: the operator's source actors hand each decoded batch to :meth:`Hub.feed`,
on their own threads, at the fleet's pace; that must cost them one ``deque.append``
(atomic in CPython: no lock, no wait), whatever the dashboard is doing. On the
dashboard's own event loop, :meth:`Hub.run` drains what came in every ``interval``
(default 250 ms), applies it to the :class:`~.view.FleetView`, notices devices gone
silent, and, if anything changed, bumps :attr:`Hub.version` and wakes the server-sent
event streams. So a viewer hears at most ``1/interval`` changes a second, however many
devices change: 10,000 devices changing at once is one event.

It is the web layer's view port (:class:`fleet.runtime.web.app.ViewPort`): every read
happens on the dashboard's loop, the thread that applies, so the view needs no lock.

What it must never do: block a feeding thread, or read the view off its loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Mapping
from typing import Any, Final

from .query import QueryError, parse_query
from .view import FleetView

__all__ = ["Hub", "QueryError"]

INTERVAL: Final = 0.25
MAX_BACKLOG: Final = 100_000
"""Batches waiting to be applied; past it the oldest are dropped: the operator's threads
never wait for the dashboard (at 4 drains a second it is never reached in practice)."""


class Hub:
    def __init__(self, *, liveness_timeout: float, interval: float = INTERVAL) -> None:
        self.view = FleetView(liveness_timeout=liveness_timeout)
        self.interval = interval
        self._inbox: collections.deque[object] = collections.deque(maxlen=MAX_BACKLOG)
        self.applied = 0  # batches applied (the loop's own count)
        self.version = 0
        self._changed: asyncio.Event | None = None

    def feed(self, message: object) -> None:
        """Any thread: one decoded batch (never blocks)."""
        self._inbox.append(message)

    def step(self, *, now: float) -> bool:
        """Apply what came in and notice silence; whether a new version is out."""
        inbox, view, changed = self._inbox, self.view, False
        while inbox:
            try:
                message = inbox.popleft()
            except IndexError:
                break
            self.applied += 1
            changed = view.apply(message) or changed
        changed = view.expire(now=now) or changed
        if changed:
            self.version += 1
            if self._changed is not None:
                self._changed.set()
                self._changed = None
        return changed

    async def run(self) -> None:
        """On the dashboard's loop, until cancelled."""
        while True:
            self.step(now=time.time())
            await asyncio.sleep(self.interval)

    async def wait(self, after: int, *, timeout: float) -> int:
        """The version once it is past ``after`` (or the same one after ``timeout``)."""
        if self.version > after:
            return self.version
        if self._changed is None:
            self._changed = asyncio.Event()
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        return self.version

    # -- the web layer's questions ---------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        return {"version": self.version, **self.view.overview(now=time.time())}

    def devices(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Raises :class:`QueryError` (a ValueError) for a filter that does not parse."""
        query = parse_query(params)
        return {"version": self.version, **self.view.page(query, now=time.time())}

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.view.deployment(namespace, name, now=time.time())
        return None if found is None else {"version": self.version, **found}
