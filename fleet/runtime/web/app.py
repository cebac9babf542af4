"""The dashboard's routes: the page, ``/api/*`` (JSON) and ``/api/events`` (server-sent events).

Why it exists: one aiohttp application, the same in the operator and in ``fleetctl
dashboard``. Routes:

* ``GET /`` the page (``static/index.html``; its script and style are served beside it,
  hand-written, no build step, nothing fetched from elsewhere);
* ``GET /api/overview``, ``GET /api/devices?selector=&name=&state=&page=&size=``,
  ``GET /api/deployments/{namespace}/{name}``: JSON; a filter that does not parse is a
  400 with the reason, an unknown Deployment a 404;
* ``GET|POST /api/deployments/{namespace}/{name}/rollout[/{action}]``: the rollout and
  its buttons, when the server was given a :class:`~.rollouts.RolloutPort`
  (:mod:`.rollouts`);
* ``GET /api/events?after=N``: one ``change`` event (``{"version": N}``) each time the
  published version moves, at most as often as the view publishes (it coalesces), and a
  comment every ``keepalive`` seconds.

Every route but the static assets asks :class:`~.access.Access` first: 401 without an
accepted token, 403 when the token may not read Deployments; the page then says so
instead of showing data.

What it must never do: block its loop (the view's answers are in memory), hold more than
``max_streams`` event streams, or say more about a refused token than why.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol

from aiohttp import web

from .access import MAX_TOKEN, NO_TOKEN, VIEWER, Access, Verdict
from .rollouts import RolloutPort, RolloutRoutes

logger = logging.getLogger(__name__)

ASSETS: Final = {"app.js": "text/javascript", "style.css": "text/css"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ViewPort(Protocol):
    """What the page shows (:class:`fleet.dashboard.hub.Hub`)."""

    version: int

    def overview(self) -> dict[str, Any]: ...

    def devices(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Raises ValueError (its message for the viewer) for a filter that does not parse."""
        ...

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def wait(self, after: int, *, timeout: float) -> int: ...


def _asset(name: str) -> bytes:
    return importlib.resources.files(__package__).joinpath("static", name).read_bytes()


def _token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.query.get("token", "")


def _json(body: Any, *, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(),
                        content_type="application/json")  # fmt: skip


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message, "status": status}, status=status)


class Dashboard:
    """The application; :meth:`make` builds it for one view and one access rule."""

    def __init__(
        self,
        view: ViewPort,
        access: Access,
        *,
        keepalive: float = 15.0,
        max_streams: int = 64,
        rollouts: RolloutPort | None = None,
    ) -> None:
        self.view = view
        self.access = access
        self.rollouts = rollouts
        self.keepalive = keepalive
        self.max_streams = max_streams
        self.streams = 0
        self._page = _asset("index.html")

    def make(self) -> web.Application:
        app = web.Application(middlewares=[self._authorize], client_max_size=64 * 1024)
        app.router.add_get("/", self._index)
        for name in ASSETS:
            app.router.add_get(f"/static/{name}", self._static)
        app.router.add_get("/api/overview", self._overview)
        app.router.add_get("/api/devices", self._devices)
        app.router.add_get("/api/deployments/{namespace}/{name}", self._deployment)
        app.router.add_get("/api/events", self._events)
        if self.rollouts is not None:
            RolloutRoutes(self.rollouts, self.access).add(app)
        return app

    @web.middleware
    async def _authorize(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/static/"):
            return await handler(request)  # the same bytes for everyone: no fleet data
        token = _token(request)
        if len(token) > MAX_TOKEN:
            verdict = Verdict(status=401, reason=f"token longer than {MAX_TOKEN} characters")
        elif not token:
            verdict = NO_TOKEN
        else:
            try:
                verdict = await self.access.check(token)
            except Exception as exc:  # the reviewer is down: nobody sees, and we say why
                logger.warning("dashboard: checking a token failed: %s", exc)
                verdict = Verdict(status=503, reason="cannot check the token now")
        if not verdict.allowed:
            if request.path == "/":
                return self._page_response(status=verdict.status)
            return _error(verdict.status, verdict.reason)
        request[VIEWER] = verdict
        return await handler(request)

    def _page_response(self, *, status: int = 200) -> web.Response:
        # The page itself holds no data; refused, it still loads, asks the API, and shows
        # the API's reason (401/403) instead of the fleet.
        return web.Response(status=status, body=self._page, content_type="text/html",
                            headers={"Cache-Control": "no-store",
                                     "Referrer-Policy": "no-referrer"})  # fmt: skip

    async def _index(self, request: web.Request) -> web.Response:
        return self._page_response()

    async def _static(self, request: web.Request) -> web.Response:
        name = request.path.rsplit("/", 1)[1]
        return web.Response(body=_asset(name), content_type=ASSETS[name])

    async def _overview(self, request: web.Request) -> web.Response:
        return _json(self.view.overview())

    async def _devices(self, request: web.Request) -> web.Response:
        try:
            return _json(self.view.devices(request.query))
        except ValueError as exc:
            return _error(400, str(exc))

    async def _deployment(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        found = self.view.deployment(namespace, name)
        if found is None:
            shown = f"{namespace}/{name}"[:300]
            return _error(404, f"no Deployment {shown} (it may have been deleted)")
        return _json(found)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if self.streams >= self.max_streams:
            return _error(503, f"{self.max_streams} event streams open already")
        raw = request.query.get("after", "0")
        after = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 18 else 0
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        })  # fmt: skip
        self.streams += 1
        try:
            await response.prepare(request)
            await response.write(b"retry: 1000\n\n")
            while True:
                version = await self.view.wait(after, timeout=self.keepalive)
                if version > after:
                    after = version
                    await response.write(f"event: change\ndata: {{\"version\": {version}}}\n\n"
                                         .encode())  # fmt: skip
                else:
                    await response.write(b": keepalive\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the viewer went away, or the server is stopping
        finally:
            self.streams -= 1
        return response
