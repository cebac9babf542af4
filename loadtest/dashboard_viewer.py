"""One dashboard open during a load run: what the page does, without the browser.

Why it exists: the dashboard's cost is measured as a load run with one viewer against
none (benchmarks/dashboard_overhead.py). A browser on this 2-core machine would cost more
than the operator it watches, so this does what the page does (fleet/runtime/web/static/
app.js) over plain HTTP: it follows ``/api/events`` (server-sent events) and, on each
``change``, fetches ``/api/overview`` and the first page of ``/api/devices``, one fetch
at a time, as the page does. It runs on a thread of the harness; :meth:`Viewer.stop`
ends it and :meth:`Viewer.figures` says how many changes it heard and fetches it made.

What it must never do: fetch more often than the server says something changed, or keep
a connection after :meth:`Viewer.stop`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

PAGE = "/api/devices?selector=&name=&state=&page=0&size=50"


class Viewer:
    def __init__(self, *, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.changes = self.fetches = self.errors = 0
        self.bytes = 0
        self.fetch_s = 0.0
        self._stop = threading.Event()
        self._stream: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name="dashboard-viewer", daemon=True)

    def start(self) -> Viewer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None and stream.sock is not None:
            with contextlib.suppress(OSError):
                stream.sock.shutdown(2)  # wakes the blocked read
        self._thread.join(30)

    def figures(self) -> dict[str, Any]:
        return {"changes": self.changes, "fetches": self.fetches, "errors": self.errors,
                "bytes": self.bytes, "fetch_s": round(self.fetch_s, 3)}  # fmt: skip

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _fetch(self, fetcher: http.client.HTTPConnection) -> None:
        started = time.monotonic()
        for path in ("/api/overview", PAGE):
            fetcher.request("GET", path, headers=self._headers())
            response = fetcher.getresponse()
            body = response.read()
            if response.status != 200:
                self.errors += 1
            self.bytes += len(body)
            self.fetches += 1
        self.fetch_s += time.monotonic() - started

    def _run(self) -> None:
        after = 0
        while not self._stop.is_set():
            stream = http.client.HTTPConnection(self.host, self.port, timeout=60)
            fetcher = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self._stream = stream
            try:
                self._fetch(fetcher)  # the page loads: one fetch, then follows the stream
                stream.request("GET", f"/api/events?after={after}", headers=self._headers())
                response = stream.getresponse()
                if response.status != 200:
                    self.errors += 1
                    self._stop.wait(1.0)
                    continue
                event = ""
                while not self._stop.is_set():
                    line = response.readline(64 * 1024)
                    if not line:
                        break
                    text = line.decode().rstrip("\r\n")
                    if text.startswith("event:"):
                        event = text[6:].strip()
                    elif text.startswith("data:") and event == "change":
                        after = int(json.loads(text[5:])["version"])
                        self.changes += 1
                        self._fetch(fetcher)
                    elif not text:
                        event = ""
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                if not self._stop.is_set():
                    self.errors += 1
                    self._stop.wait(1.0)  # the page's EventSource retries after 1 s too
            finally:
                stream.close()
                fetcher.close()


class OpenDashboard:
    """``loadtest/run --operator-dashboard``: the operator's flag and token, and the viewer.

    Off: no flag, no viewer, nothing written."""

    def __init__(self, *, on: bool) -> None:
        self.on = on
        self.token = secrets.token_urlsafe(24)
        self.port = _free_port() if on else 0
        self.viewer: Viewer | None = None

    def operator_args(self) -> list[str]:
        return ["--dashboard-address", f"127.0.0.1:{self.port}"] if self.on else []

    def operator_env(self) -> dict[str, str]:
        return {"FLEET_DASHBOARD_TOKEN": self.token} if self.on else {}

    def start(self, *, timeout: float = 120.0) -> None:
        """Once the operator answers on its dashboard port (bounded), open the viewer."""
        if not self.on:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"loadtest: the operator's dashboard did not listen within {timeout:g} s"
                    ) from None
                time.sleep(0.2)
        self.viewer = Viewer(host="127.0.0.1", port=self.port, token=self.token).start()

    def stop(self, workdir: Path) -> None:
        if self.viewer is None:
            return
        self.viewer.stop()
        figures = self.viewer.figures()
        (workdir / "dashboard.json").write_text(json.dumps(figures) + "\n")
        print(f"loadtest: the open dashboard heard {figures['changes']} changes, made "
              f"{figures['fetches']} fetches ({figures['errors']} errors)")  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
