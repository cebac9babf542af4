"""The agent's cluster client: :class:`~.port.ClusterClient` over the ``kubernetes`` client.

Why it exists: the agent's ``kubernetes`` runtime needs a handful of generic calls on
any kind (discovery, get, list by label, server-side apply, delete, watch), which the
typed APIs of the client do not give; ``ApiClient.call_api`` on the object's own path
does, with the kubeconfig's credentials (``BearerToken``, client certificates). Server-
side apply is a ``PATCH`` with ``Content-Type: application/apply-patch+yaml`` (a JSON
body: JSON is YAML), ``fieldManager`` (the agent's, ``fleet-agent`` by default) and
``force=true`` (the score is the desired state: a field another manager took is taken
back, as drift is), and ``fieldValidation=Strict`` (a misspelt field is refused, not
dropped).

Every call has a timeout. Responses are never parsed by the client: they are decoded
here with a bounded depth (:func:`~fleet.runtime.kube.decode.decode_loose`), so a
hostile object nested 10,000 deep costs a placeholder, not the agent.

What it must never do: write without the field manager, follow a redirect to another
API, or raise the client's exceptions (they become fleet's, :mod:`..errors`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import quote

import kubernetes
import urllib3

from fleet.runtime.kube.decode import decode_loose
from fleet.runtime.kube.errors import KubeError, KubeUnavailable, translate

from .port import ApplyRefused, Kind, ObjectEvent, bounded

logger = logging.getLogger(__name__)

APPLY_PATCH: Final = "application/apply-patch+yaml"
DEFAULT_FIELD_MANAGER: Final = "fleet-agent"
DISCOVERY_TTL: Final = 60.0
OBJECT_DEPTH: Final = 64  # deeper parts of an object read back as a placeholder
_AUTH: Final = ["BearerToken"]


class KubeCluster:
    """One cluster over one configured ``ApiClient``; thread-safe (urllib3's pool)."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        field_manager: str = DEFAULT_FIELD_MANAGER,
        timeout: float = 10.0,
        watch_timeout: int = 60,
    ) -> None:
        self.api_client = api_client
        self.field_manager = field_manager
        self.timeout = timeout
        self.watch_timeout = watch_timeout
        self._kinds: dict[str, tuple[float, dict[str, Kind]]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    # -- plumbing --------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: Any = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        client = self.api_client
        try:
            method, url, headers, body, post = client.param_serialize(
                method=method, resource_path=path, query_params=query or [],
                header_params=headers, body=body, auth_settings=_AUTH,
            )  # fmt: skip
            resp = client.call_api(
                method, url, header_params=headers, body=body, post_params=post,
                _request_timeout=timeout if timeout is not None else self.timeout,
            )  # fmt: skip
        except kubernetes.client.ApiException as exc:
            raise _refused(exc.status or 0, str(exc.reason or ""), exc.body, what=what) from exc
        except Exception as exc:
            raise translate(exc, what=what) from exc
        raw = resp.response  # urllib3's, not read yet: a watch streams it
        if resp.status >= 400:
            try:
                data = raw.data
            except (urllib3.exceptions.HTTPError, OSError):
                data = b""
            finally:
                raw.release_conn()
            raise _refused(resp.status, str(resp.reason or ""), data, what=what)
        return raw

    def _json(self, method: str, path: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        resp = self._request(method, path, what=what, **kwargs)
        try:
            data: bytes = resp.data
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailable(f"{what}: {exc!r}") from exc
        finally:
            resp.release_conn()
        found = decode_loose(data, depth=OBJECT_DEPTH)
        if not isinstance(found, dict):
            raise KubeError(f"{what}: the API answered something that is not an object")
        return found

    @staticmethod
    def _path(kind: Kind, *, namespace: str | None, name: str | None = None) -> str:
        root = f"/apis/{kind.api_version}" if kind.group else f"/api/{kind.api_version}"
        scope = f"/namespaces/{quote(namespace, safe='')}" if namespace and kind.namespaced else ""
        tail = f"/{quote(name, safe='')}" if name else ""
        return f"{root}{scope}/{kind.plural}{tail}"

    # -- ClusterClient ---------------------------------------------------------------------

    def version(self) -> str:
        try:
            found = self._json("GET", "/version", what="get /version")
        except Exception:  # the inventory says "unknown" rather than failing
            return "unknown"
        return str(found.get("gitVersion") or "unknown")[:64]

    def kind(self, api_version: str, kind: str) -> Kind | None:
        now = time.monotonic()
        with self._lock:
            cached = self._kinds.get(api_version)
        fresh = cached is not None and now - cached[0] < DISCOVERY_TTL
        if cached is not None and fresh and (kind in cached[1] or now - cached[0] < 5.0):
            return cached[1].get(kind)  # a miss looks again, but not more than every 5 s
        path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        try:
            found = self._json("GET", path, what=f"discover {api_version}")
        except ApplyRefused as exc:
            if exc.code != 404:
                raise
            found = {}
        kinds: dict[str, Kind] = {}
        resources = found.get("resources") or []
        if not isinstance(resources, list):
            raise KubeError(f"discover {api_version}: `resources` is not a list")
        for res in resources:
            if not isinstance(res, dict):
                continue
            plural, name = res.get("name"), res.get("kind")
            if isinstance(plural, str) and "/" not in plural and isinstance(name, str):
                kinds[name] = Kind(
                    api_version=api_version, kind=name, plural=plural,
                    namespaced=bool(res.get("namespaced")),
                )  # fmt: skip
        with self._lock:
            self._kinds[api_version] = (now, kinds)
        return kinds.get(kind)

    def get(self, kind: Kind, name: str, *, namespace: str | None) -> dict[str, Any] | None:
        try:
            return self._json(
                "GET", self._path(kind, namespace=namespace, name=name), what=f"get {kind.kind}"
            )
        except ApplyRefused as exc:
            if exc.code == 404:
                return None
            raise

    def list(
        self, kind: Kind, *, namespace: str | None, labels: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        found = self._json(
            "GET", self._path(kind, namespace=namespace), what=f"list {kind.plural}",
            query=[("labelSelector", selector)],
        )  # fmt: skip
        items = found.get("items") or []
        if not isinstance(items, list):
            raise KubeError(f"list {kind.plural}: `items` is not a list")
        return [item for item in items if isinstance(item, dict)]

    def apply(
        self, kind: Kind, body: Mapping[str, Any], *, namespace: str | None
    ) -> dict[str, Any]:
        name = str(body["metadata"]["name"])
        query = [
            ("fieldManager", self.field_manager),
            ("force", "true"),
            ("fieldValidation", "Strict"),
        ]
        return self._json(
            "PATCH", self._path(kind, namespace=namespace, name=name),
            what=f"apply {kind.kind} {name!r}", query=query, body=json.dumps(body),
            content_type=APPLY_PATCH,
        )  # fmt: skip

    def delete(self, kind: Kind, name: str, *, namespace: str | None) -> bool:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            resp = self._request(
                "DELETE", self._path(kind, namespace=namespace, name=name),
                what=f"delete {kind.kind} {name!r}", body=body, content_type="application/json",
            )  # fmt: skip
        except ApplyRefused as exc:
            if exc.code == 404:
                return False
            raise
        resp.drain_conn()
        resp.release_conn()
        return True

    def watch(
        self,
        kinds: tuple[Kind, ...],
        *,
        labels: Mapping[str, str],
        on_event: Callable[[ObjectEvent], None],
        on_error: Callable[[BaseException], None],
    ) -> LabelWatch:
        watch = LabelWatch(self, kinds, labels=labels, on_event=on_event)
        watch.start()
        return watch


def _refused(status: int, reason: str, body: object, *, what: str) -> BaseException:
    """An answer >= 400 as fleet's error: away (5xx, 429, no answer) or refused (the API's
    own message, bounded)."""
    if status == 429 or status >= 500 or status == 0:
        return KubeUnavailable(f"{what}: {status} {reason}")
    message = reason
    if isinstance(body, bytes | str) and body:
        try:
            found = decode_loose(body.encode() if isinstance(body, str) else body, depth=4)
        except Exception:  # not JSON: its reason is all we have
            found = None
        if isinstance(found, dict) and isinstance(found.get("message"), str):
            message = found["message"]
    return ApplyRefused(bounded(f"{message} ({status})"), code=status)


class LabelWatch:
    """One thread per kind, each watching its labelled objects in all namespaces; every
    watch is bounded (``timeoutSeconds``, a read timeout) and reopened after a backoff."""

    def __init__(
        self,
        cluster: KubeCluster,
        kinds: tuple[Kind, ...],
        *,
        labels: Mapping[str, str],
        on_event: Callable[[ObjectEvent], None],
    ) -> None:
        self._cluster = cluster
        self._kinds = kinds
        self._selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        self._on_event = on_event
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._responses: dict[str, Any] = {}
        self._guard = threading.Lock()

    def start(self) -> None:
        for kind in self._kinds:
            thread = threading.Thread(
                target=self._run, args=(kind,), name=f"kube-drift-{kind.plural}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def close(self) -> None:
        self._stopping.set()
        with self._guard:
            responses = list(self._responses.values())
        for resp in responses:
            try:
                resp.shutdown()
            except Exception:  # already closed: nothing to interrupt
                logger.debug("closing a drift watch failed", exc_info=True)
        for thread in self._threads:
            thread.join(10.0)

    def _run(self, kind: Kind) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                self._watch_once(kind)
                delay = 0.5
            except Exception as exc:
                if self._stopping.is_set():
                    return
                logger.warning(
                    "drift watch of %s failed: %s; again in %.1fs", kind.plural, exc, delay
                )
                self._stopping.wait(delay)
                delay = min(delay * 2, 30.0)

    def _watch_once(self, kind: Kind) -> None:
        cluster = self._cluster
        query = [
            ("watch", "true"),
            ("labelSelector", self._selector),
            ("timeoutSeconds", str(cluster.watch_timeout)),
        ]
        resp = cluster._request(
            "GET", cluster._path(kind, namespace=None), what=f"watch {kind.plural}", query=query,
            timeout=(cluster.timeout, cluster.watch_timeout + 15.0),
        )  # fmt: skip
        with self._guard:
            self._responses[kind.plural] = resp
        try:
            if self._stopping.is_set():
                return
            for line in kubernetes.watch.watch.iter_resp_lines(resp):  # type: ignore[no-untyped-call]
                if self._stopping.is_set():
                    return
                if line:
                    self._handle(kind, line)
        except (urllib3.exceptions.HTTPError, OSError):
            if not self._stopping.is_set():
                logger.debug("drift watch of %s ended", kind.plural, exc_info=True)
        finally:
            with self._guard:
                self._responses.pop(kind.plural, None)
            resp.close()
            resp.release_conn()

    def _handle(self, kind: Kind, line: str) -> None:
        event = decode_loose(line.encode(), depth=6)
        if not isinstance(event, dict):
            return
        kind_of, obj = event.get("type"), event.get("object")
        if kind_of == "ERROR":
            raise KubeError(f"watch {kind.plural}: {bounded(str(obj))}")
        if kind_of not in ("ADDED", "MODIFIED", "DELETED") or not isinstance(obj, dict):
            return
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
            return
        labels = meta.get("labels")
        self._on_event(
            ObjectEvent(
                type=kind_of, kind=kind.kind, name=meta["name"],
                namespace=meta.get("namespace") if isinstance(meta.get("namespace"), str) else None,
                labels={k: v for k, v in labels.items() if isinstance(v, str)}
                if isinstance(labels, dict) else {},
            )
        )  # fmt: skip
