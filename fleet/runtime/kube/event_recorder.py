"""The operator's Kubernetes Events, sent from a thread of their own (core/v1 ``Event``).

Why it exists: actors say what happened (:meth:`EventRecorder.post`, an
:class:`~fleet.runtime.kube.events.EventNote`) and go on; this module owns the client
calls. Notes wait in a bounded, coalescing, rate-limited queue
(:class:`~fleet.runtime.kube.events.EventQueue`); one thread takes them and creates the
Event, or patches its ``count`` and ``lastTimestamp`` when it repeats one already posted
(:class:`~fleet.runtime.kube.events.Correlator`), as client-go's EventRecorder does.
Events go in the involved object's namespace, ``default`` for a cluster-scoped one (a
Device), as client-go puts a Node's. A Device's ``uid`` (which ``kubectl describe``
matches on) is read from its resource just before sending.

Failures never stop anything: a note the API refuses is dropped, one it cannot answer is
tried again (at most ``retries`` times); the first failure of each kind is logged at
WARNING, the rest at DEBUG; each call's outcome reaches the client's
:class:`~fleet.runtime.kube.health.ApiHealth` (``kube_api_errors_total``) and every note's
fate ``observe(result, count)`` (``created``, ``patched``, ``dropped``, ``failed``).

What it must never do: block a caller of :meth:`post` (a lock held for a dict update), or
hold more notes than the queue's capacity.
"""

from __future__ import annotations

import datetime
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import kubernetes

from fleet.runtime.kube.client import DEVICES, MERGE_PATCH, KubeClient
from fleet.runtime.kube.errors import KubeError, KubeNotFound, KubeUnavailable, translate
from fleet.runtime.kube.events import (
    COMPONENT,
    DEFAULT_LIMITS,
    Correlator,
    EventLimits,
    EventNote,
    EventQueue,
    Posted,
    cut,
)
from fleet.runtime.kube.health import error_kind

__all__ = ["EventRecorder"]

logger = logging.getLogger(__name__)

CLUSTER_EVENTS_NAMESPACE = "default"
DROP_LOG_EVERY = 60.0  # seconds between two lines about dropped notes


def rfc3339(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    """The operator's ``EventsPort``: :meth:`post` from any thread; :meth:`start` and
    :meth:`stop` from one."""

    def __init__(
        self,
        client: KubeClient,
        *,
        limits: EventLimits = DEFAULT_LIMITS,
        observe: Callable[[str, int], None] | None = None,
        retries: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._core = kubernetes.client.CoreV1Api(client.api_client)
        self._observe = observe
        self._retries = retries
        self._clock = clock
        self._cond = threading.Condition()
        self._queue = EventQueue(limits, clock=clock)
        self._correlator = Correlator(capacity=limits.capacity)
        self._tries: dict[tuple[str, str, str | None, str, str], int] = {}
        self._logged: set[tuple[str, str]] = set()
        self._last_drop_log = float("-inf")
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._host = socket.gethostname()[:128]
        self._counts_lock = threading.Lock()
        self.counts: dict[str, int] = dict.fromkeys(("created", "patched", "dropped", "failed"), 0)

    # -- EventsPort -----------------------------------------------------------------------

    def post(self, note: EventNote) -> None:
        """Queue ``note``; returns at once, never fails."""
        with self._cond:
            waiting = len(self._queue)
            if self._queue.put(note):
                if len(self._queue) > waiting:  # a new key (a replaced one changes no due time)
                    self._cond.notify()
                return
        self._count("dropped")
        now = self._clock()
        if now - self._last_drop_log >= DROP_LOG_EVERY:
            self._last_drop_log = now
            logger.warning(
                "events: %d notes waiting (the bound), %d dropped so far (latest: %s %s/%s)",
                len(self._queue), self.counts["dropped"], note.reason, note.obj.kind,
                note.obj.name,
            )  # fmt: skip

    # -- the thread -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kube-events", daemon=True)
        self._thread.start()

    def stop(self, *, timeout: float = 25.0) -> None:
        """Stop after the call in flight (if any); notes still waiting are not sent. A note
        makes at most two calls (a Device's uid, then the Event), each bounded by the
        client's timeout (10 s): ``timeout`` covers both."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            left = len(self._queue)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"the events thread did not stop within {timeout} s")
            self._thread = None
        if left:
            logger.info("events: %d notes not sent (stopping)", left)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    note, wait = self._queue.take()
                    if note is not None:
                        break
                    self._cond.wait(wait)
            try:
                self._send(note)
            except Exception:  # a bug here must not end Events for good
                logger.exception("events: sending %s failed", note.reason)

    # -- one note -------------------------------------------------------------------------

    def _send(self, note: EventNote) -> None:
        try:
            if not self._patched(note):
                self._create(note)
        except KubeUnavailable as exc:
            self._failed(note, exc, retry=True)
        except Exception as exc:  # refused for good (403, 409, 422...): dropped
            self._failed(note, exc, retry=False)
        else:
            self._tries.pop(note.key, None)

    def _patched(self, note: EventNote) -> bool:
        """Whether ``note`` repeated an Event posted before, now patched."""
        posted = self._correlator.find(note)
        if posted is None:
            return False
        body = {"count": posted.count + 1, "lastTimestamp": rfc3339(note.at)}
        what = f"patch events {posted.namespace}/{posted.name}"
        try:
            self._call(what, self._core.patch_namespaced_event, posted.name, posted.namespace,
                       body, _content_type=MERGE_PATCH)  # fmt: skip
        except KubeNotFound:  # deleted (an hour's TTL, or by hand): post it anew
            self._correlator.forget(note)
            return False
        posted.count += 1
        self._count("patched")
        return True

    def _create(self, note: EventNote) -> None:
        obj = note.obj
        uid = obj.uid or self._uid(note)
        if self._stopping:  # asked to stop during the uid's call: this one is not sent
            return
        namespace = obj.namespace or CLUSTER_EVENTS_NAMESPACE
        name = f"{obj.name}.{time.time_ns():x}"  # client-go's: unique, sorted by time
        stamp = rfc3339(note.at)
        involved: dict[str, Any] = {"apiVersion": obj.api_version, "kind": obj.kind,
                                    "name": obj.name}  # fmt: skip
        if obj.namespace is not None:
            involved["namespace"] = obj.namespace
        if uid:
            involved["uid"] = uid
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "type": note.type,
            "reason": note.reason,
            "message": cut(note.message),
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": COMPONENT, "host": self._host},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._host,
        }
        self._call(f"create events {namespace}/{name}", self._core.create_namespaced_event,
                   namespace, body)  # fmt: skip
        self._correlator.remember(note, Posted(namespace=namespace, name=name, count=1,
                                               first=stamp))  # fmt: skip
        self._count("created")

    def _uid(self, note: EventNote) -> str:
        """A Device's uid, read now ("" if it cannot be: the Event goes without one)."""
        obj = note.obj
        if obj.kind != "Device" or obj.namespace is not None:
            return ""
        try:
            return self._client.get_object(DEVICES, namespace=None, name=obj.name).uid
        except KubeNotFound:
            return ""
        except KubeError as exc:
            self._log_once("get", exc)
            return ""

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """One client call (a write); the response is not read (it is not needed)."""
        self._client.fence.check(what)
        health = self._client.health
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=self._client.timeout,
                      **kwargs)  # fmt: skip
            resp.release_conn()
        except Exception as exc:
            error = translate(exc, what=what)
            health.failed(what.split(" ", 1)[0], error)
            raise error from exc
        health.answered()

    def _failed(self, note: EventNote, exc: BaseException, *, retry: bool) -> None:
        self._log_once("post", exc)
        tries = self._tries.get(note.key, 0) + 1
        if retry and tries < self._retries:
            self._tries[note.key] = tries
            with self._cond:
                self._queue.retry(note)
            return
        self._tries.pop(note.key, None)
        self._count("failed")

    def _log_once(self, verb: str, exc: BaseException) -> None:
        kind = (verb, error_kind(exc))
        if kind in self._logged:
            logger.debug("events: %s", exc)
            return
        self._logged.add(kind)
        logger.warning("events: %s (further errors of this kind are logged at DEBUG)", exc)

    def _count(self, result: str) -> None:
        with self._counts_lock:
            self.counts[result] += 1
        if self._observe is not None:
            self._observe(result, 1)
