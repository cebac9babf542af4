"""List-then-watch of one custom resource type, on its own thread, bounded and self-healing.

Why it exists: the operator must see every Deployment change, survive a dead connection
and an expired ``resourceVersion``, and never block its actors or the asyncio loop while
doing so. A :class:`ResourceWatcher` runs this loop on a daemon thread:

1. list (``on_listed`` gets the complete set of objects for its scope: the consumer
   replaces what it knew, so deletions missed while away are noticed), remember the
   list's ``resourceVersion``;
2. watch from there with ``timeoutSeconds`` *and* a client-side read timeout (a watch
   whose peer died, or a server that ignores ``timeoutSeconds``, is noticed within
   ``read_timeout``), and with a total deadline checked on every event; when it ends,
   watch again from the last version seen;
3. on 410 Gone (the version expired) go back to 1; on any other failure wait
   ``retry_delay`` (doubling, up to 30 s) and go back to 1.

Objects are decoded one by one (:mod:`fleet.runtime.kube.decode`): an object that cannot
be used (no name, metadata of the wrong types) is logged and left out of the list, or its
event skipped; it never fails the list or ends the watch, so every other object is seen.

What it must never do: call the consumer from the loop thread, or swallow the stop request
(``stop`` closes the open response so the thread ends at once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import kubernetes
import urllib3

from fleet.contracts import CRD_GROUP, CRD_VERSION
from fleet.runtime.kube.client import KubeClient, KubeError, KubeObject, Resource, translate
from fleet.runtime.kube.decode import decode_event

logger = logging.getLogger(__name__)

OnListed = Callable[[str | None, tuple[KubeObject, ...]], None]
OnEvent = Callable[[str, KubeObject], None]


class _Gone(Exception):
    """The watch's resourceVersion expired (410): relist."""


class ResourceWatcher:
    """Keeps a consumer in step with one resource type in one scope (a namespace or all)."""

    def __init__(
        self,
        *,
        client: KubeClient,
        resource: Resource,
        namespace: str | None,
        on_listed: OnListed,
        on_event: OnEvent,
        timeout_seconds: int = 60,
        read_timeout: float = 75.0,
        retry_delay: float = 1.0,
    ) -> None:
        self._client = client
        self._resource = resource
        self._namespace = namespace
        self._on_listed = on_listed
        self._on_event = on_event
        self._timeout_seconds = timeout_seconds
        self._read_timeout = read_timeout
        self._retry_delay = retry_delay
        self._stopping = threading.Event()
        self._resp: Any = None
        self._thread: threading.Thread | None = None
        self.lists = 0  # how many times it listed (tests and metrics)

    @property
    def scope(self) -> str:
        return self._namespace or "<all namespaces>"

    def start(self) -> None:
        name = f"kube-watch-{self._resource.plural}-{self._namespace or 'all'}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self, *, timeout: float = 5.0) -> None:
        self._stopping.set()
        resp = self._resp
        if resp is not None:
            try:
                resp.shutdown()
            except Exception:  # already closed: nothing to interrupt
                logger.debug("closing the watch response failed", exc_info=True)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning(
                    "watcher thread %s did not stop in %.1fs", self._thread.name, timeout
                )

    def _run(self) -> None:
        delay = self._retry_delay
        while not self._stopping.is_set():
            try:
                version = self._list()
                delay = self._retry_delay
                while not self._stopping.is_set():
                    version = self._watch_once(version)
            except _Gone:
                logger.info(
                    "watch of %s in %s expired (410): relisting", self._resource.plural, self.scope
                )
            except Exception as exc:
                if self._stopping.is_set():
                    break
                logger.warning(
                    "watch of %s in %s failed: %s; relisting in %.1fs",
                    self._resource.plural,
                    self.scope,
                    exc,
                    delay,
                )
                self._stopping.wait(delay)
                delay = min(delay * 2, 30.0)

    def _list(self) -> str:
        listed = self._client.list_objects(self._resource, namespace=self._namespace)
        for problem in listed.problems:
            logger.warning("skipping an unusable %s object: %s", self._resource.plural, problem)
        self.lists += 1
        self._on_listed(self._namespace, listed.objects)
        return listed.resource_version

    def _open(self, version: str) -> Any:
        api = self._client.api
        kwargs: dict[str, Any] = {
            "watch": True,
            "allow_watch_bookmarks": True,
            "timeout_seconds": self._timeout_seconds,
            "_preload_content": False,
            "_request_timeout": (self._client.timeout, self._read_timeout),
        }
        if version:
            kwargs["resource_version"] = version
        what = f"watch {self._resource.plural} in {self.scope}"
        health = self._client.health
        try:
            if self._namespace is None:
                resp = api.list_cluster_custom_object(
                    CRD_GROUP, CRD_VERSION, self._resource.plural, **kwargs
                )
            else:
                resp = api.list_namespaced_custom_object(
                    CRD_GROUP, CRD_VERSION, self._namespace, self._resource.plural, **kwargs
                )
        except Exception as exc:
            if isinstance(exc, kubernetes.client.ApiException) and exc.status == 410:
                health.answered()
                raise _Gone from exc
            error = translate(exc, what=what)
            health.failed("watch", error)
            raise error from exc
        health.answered()
        return resp

    def _watch_once(self, version: str) -> str:
        """One bounded watch from ``version``; returns the last version seen."""
        resp = self._open(version)
        self._resp = resp
        deadline = time.monotonic() + self._timeout_seconds + self._read_timeout
        try:
            for line in kubernetes.watch.watch.iter_resp_lines(resp):  # type: ignore[no-untyped-call]
                if not line:
                    continue
                version = self._handle(line, version)
                if self._stopping.is_set() or time.monotonic() > deadline:
                    break
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # A read timeout or a dropped connection ends this watch; the next one resumes.
            if not self._stopping.is_set():
                logger.debug("watch of %s in %s ended: %r", self._resource.plural, self.scope, exc)
        finally:
            self._resp = None
            resp.close()
            resp.release_conn()
        return version

    def _handle(self, line: str, version: str) -> str:
        event = decode_event(line.encode())
        if event.problem is not None:
            logger.warning(
                "watch of %s in %s: skipping an unusable event: %s",
                self._resource.plural,
                self.scope,
                event.problem,
            )
            return version
        if event.type == "ERROR":
            if event.code == 410:
                raise _Gone(event.message)
            error = KubeError(f"watch {self._resource.plural}: {event.code} {event.message}")
            self._client.health.failed("watch", error)
            raise error
        if event.type == "BOOKMARK":
            return event.resource_version or version
        obj = event.obj
        assert obj is not None  # an object event without a problem has its object
        self._on_event(event.type, obj)
        return obj.resource_version or version
