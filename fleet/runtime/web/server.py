"""Serving the dashboard on an address, on an event loop the caller owns.

Why it exists: the operator (``--dashboard-address``) and ``fleetctl dashboard`` start
the same :class:`~.app.Dashboard` the same way: :meth:`WebServer.start` binds (an
``OSError`` if it cannot) and returns the address it got; :meth:`WebServer.stop` closes
every connection, event streams too.

What it must never do: run on the operator's NATS loop (the operator gives it a loop of
its own), or outlive ``stop``.
"""

from __future__ import annotations

from aiohttp import web

from .access import Access
from .app import Dashboard, ViewPort
from .rollouts import RolloutPort


class WebServer:
    def __init__(self, view: ViewPort, access: Access, *, host: str, port: int,
                 rollouts: RolloutPort | None = None) -> None:  # fmt: skip
        self.dashboard = Dashboard(view, access, rollouts=rollouts)
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] = (host, port)

    async def start(self) -> tuple[str, int]:
        runner = web.AppRunner(self.dashboard.make(), access_log=None,
                               shutdown_timeout=2.0)  # fmt: skip
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if runner.addresses:
            host, port = runner.addresses[0][:2]
            self.address = (str(host), int(port))
        return self.address

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
