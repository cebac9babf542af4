"""The dashboard, running: its own event loop thread, the hub's publisher, the web server.

Why it exists: the operator's NATS loop is its hot path; the dashboard gets a loop of its
own (the same :class:`~fleet.runtime.aiokit.loop.EventLoopThread`), so filtering 100,000
devices for a viewer never delays a heartbeat's intake. Whoever starts it (the operator
with ``--dashboard-address``, ``fleetctl dashboard``) hands :attr:`DashboardService.feed`
to what decodes the fleet's changes, an access rule and, for the rollout buttons, a
:class:`~fleet.runtime.web.rollouts.RolloutPort` (none: the page only shows).

What it must never do: start serving before it is fed by something, or leave its thread
or its sockets behind after :meth:`DashboardService.stop`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.web.access import Access
from fleet.runtime.web.rollouts import RolloutPort
from fleet.runtime.web.server import WebServer

from .hub import INTERVAL, Hub

logger = logging.getLogger(__name__)


class DashboardService:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        access: Access,
        liveness_timeout: float,
        interval: float = INTERVAL,
        rollouts: RolloutPort | None = None,
    ) -> None:
        self.hub = Hub(liveness_timeout=liveness_timeout, interval=interval)
        self.server = WebServer(self.hub, access, host=host, port=port, rollouts=rollouts)
        self._loop = EventLoopThread(name="dashboard-loop")

    @property
    def feed(self) -> Callable[[object], None]:
        """Any thread: hand it a decoded batch (never blocks)."""
        return self.hub.feed

    @property
    def loop(self) -> EventLoopThread:
        return self._loop

    def start(self) -> tuple[str, int]:
        """Bind and serve; the address it got (an ``OSError`` if it cannot bind)."""
        self._loop.start()
        try:
            address = self._loop.run(self.server.start(), timeout=30)
        except BaseException:
            self._loop.stop()
            raise
        self._loop.spawn(self.hub.run(), name="dashboard-publisher")
        return address

    def stop(self) -> None:
        if self._loop.running:
            try:
                self._loop.run(self.server.stop(), timeout=10)
            finally:
                self._loop.stop()
