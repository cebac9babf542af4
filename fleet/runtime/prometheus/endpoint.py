"""One HTTP port: ``/metrics`` (Prometheus), ``/healthz`` (alive) and ``/readyz`` (ready).

Why it exists: Prometheus scrapes, and the kubelet probes, over HTTP. :class:`HttpEndpoint`
serves the three paths from threads of its own: one accepts, and each request is answered
on a short-lived thread, at most ``max_clients`` at a time (more are closed at once), each
bounded by a socket timeout, so a slow or hostile client can hold neither the port nor
anything else. The answers come from what was already published: the registry's
collectors and two checks that read plain values (each returns None when all is well,
else a short reason, the 503's body).

What it must never do: run on the asyncio loop or an actor's thread, or wait for an actor
(a check that did would make every probe as slow as the busiest actor).
"""

from __future__ import annotations

import http.server
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

__all__ = ["Check", "HttpEndpoint"]

logger = logging.getLogger(__name__)

Check = Callable[[], str | None]
"""None: fine; else why not (a line of plain text)."""


class HttpEndpoint:
    """``start`` binds (an ``OSError`` if it cannot) and serves; ``stop`` ends it."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        registry: CollectorRegistry,
        alive: Check,
        ready: Check,
        max_clients: int = 4,
        client_timeout: float = 10.0,
    ) -> None:
        self._host, self._port = host, port
        self._routes: dict[str, Callable[[str], tuple[int, str, bytes]]] = {
            "/metrics": lambda accept: _metrics(registry, accept),
            "/healthz": lambda _accept: _probe(alive),
            "/readyz": lambda _accept: _probe(ready),
        }
        self._slots = threading.BoundedSemaphore(max_clients)
        self._client_timeout = client_timeout
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens (the port the system chose, if ``port`` was 0)."""
        if self._server is None:
            return self._host, self._port
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        routes, timeout = self._routes, self._client_timeout

        class Handler(_Handler):
            pass

        Handler.routes, Handler.timeout = routes, timeout
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        self._server = _Server((self._host, self._port), Handler, family=family,
                               slots=self._slots)  # fmt: skip
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.5},
            name="http-endpoint", daemon=True,
        )  # fmt: skip
        self._thread.start()

    def stop(self, *, timeout: float = 5.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()  # returns once serve_forever has
        server.server_close()
        thread.join(timeout)
        self._server = self._thread = None


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a request thread never holds the process up
    block_on_close = False

    def __init__(
        self, address: tuple[str, int], handler: type[_Handler], *, family: socket.AddressFamily,
        slots: threading.BoundedSemaphore,
    ) -> None:  # fmt: skip
        self.address_family = family
        self._slots = slots
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # busy: a client retries, a probe counts a failure
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, Callable[[str], tuple[int, str, bytes]]]] = {}  # start() sets
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers

    def do_GET(self) -> None:
        route = self.routes.get(self.path.split("?", 1)[0])
        if route is None:
            self._answer(404, "text/plain; charset=utf-8", b"not found: try /metrics, "
                         b"/healthz or /readyz\n")  # fmt: skip
            return
        try:
            status, content_type, body = route(self.headers.get("Accept", ""))
        except Exception as exc:
            logger.exception("answering %s failed", self.path)
            status, content_type = 500, "text/plain; charset=utf-8"
            body = f"{type(exc).__name__}: {exc}\n".encode()
        self._answer(status, content_type, body)

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


def _metrics(registry: CollectorRegistry, accept: str) -> tuple[int, str, bytes]:
    encoder, content_type = choose_encoder(accept)
    return 200, content_type, encoder(registry)


def _probe(check: Check) -> tuple[int, str, bytes]:
    problem = check()
    if problem is None:
        return 200, "text/plain; charset=utf-8", b"ok\n"
    return 503, "text/plain; charset=utf-8", f"{problem}\n".encode()
