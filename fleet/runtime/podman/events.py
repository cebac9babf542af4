"""A podman event stream on its own thread, closable from any other thread.

Why it exists: drift repair reacts to podman's events (a container died, was stopped
or removed) within a second instead of waiting for the next periodic resync. podman's
``/events`` endpoint is a never-ending HTTP response; podman-py's generator over it
cannot be interrupted, so this module keeps the response and shuts its socket down to
stop the reading thread promptly (an agent must stop within a few seconds).

What it must never do: call ``on_event`` after :meth:`PodmanEventStream.close` has
returned, or let an exception escape its thread unreported.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any

from fleet.runtime.podman.port import ContainerEvent, RuntimeUnavailable

logger = logging.getLogger(__name__)


class PodmanEventStream:
    """Container events for containers carrying ``labels``; one reader thread."""

    def __init__(
        self,
        *,
        client: Any,
        labels: Mapping[str, str],
        on_event: Callable[[ContainerEvent], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._client = client
        # podman ORs several values of one filter key: ask it for one label, check all here.
        self._labels = dict(labels)
        first = sorted(self._labels.items())[-1:]
        self._filters = json.dumps({"type": ["container"], "label": [f"{k}={v}" for k, v in first]})
        self._on_event = on_event
        self._on_error = on_error
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name="podman-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            response = self._response
        abort_stream(response)
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join(5)
        with contextlib.suppress(Exception):
            self._client.close()

    def _run(self) -> None:
        try:
            self._read()
        except Exception as exc:
            if not self._closed.is_set():
                logger.info("podman event stream broke: %r", exc)
                with contextlib.suppress(Exception):
                    self._on_error(exc)
        finally:
            with self._lock:
                if self._response is not None:
                    with contextlib.suppress(Exception):
                        self._response.close()

    def _read(self) -> None:
        response = self._client.api.get(
            "/events", params={"stream": True, "filters": self._filters}, stream=True
        )
        with self._lock:
            self._response = response
        if not response.ok:
            raise RuntimeUnavailable(f"podman events: HTTP {response.status_code}")
        for line in response.iter_lines():
            if self._closed.is_set():
                return
            if line:
                self._deliver(json.loads(line))
        if not self._closed.is_set():
            raise RuntimeUnavailable("podman events stream ended")

    def _deliver(self, item: dict[str, Any]) -> None:
        actor = item.get("Actor") or {}
        attributes = dict(actor.get("Attributes") or {})
        code = str(attributes.pop("containerExitCode", ""))
        event = ContainerEvent(
            container_id=str(actor.get("ID", "")),
            name=str(attributes.pop("name", "")),
            action=str(item.get("Action", item.get("status", ""))),
            labels={k: str(v) for k, v in attributes.items() if isinstance(v, str)},
            exit_code=int(code) if code.isascii() and code.isdigit() and len(code) <= 9 else None,
        )
        if all(attributes.get(k) == v for k, v in self._labels.items()):
            self._on_event(event)


def abort_stream(response: Any) -> None:
    """Shut a streaming HTTP response's socket (None: nothing to shut), so the thread
    blocked reading it wakes at once; podman's events and a followed log both stream so."""
    if response is None:
        return
    sock = getattr(getattr(response.raw, "_connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
