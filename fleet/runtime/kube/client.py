"""The thin Kubernetes layer: one configured client and the few calls the operator makes.

Why it exists: only ``fleet.runtime.kube`` may touch the ``kubernetes`` client. Actors
see :class:`KubeObject` (frozen, client-free) and the methods of
:class:`~fleet.runtime.kube.gateway.KubeGateway`, which runs these blocking calls on its
own threads; ``fleetctl`` calls them directly. The client's configuration is
:mod:`.config`, its errors :mod:`.errors`.

What it must never do: run a blocking client call on the asyncio loop or on an actor's
thread, patch anything but merge patches (custom resources take no strategic merge), or
let the client parse what the operator reads (``json.loads`` dies on a spec nested 1,000
deep): reads go through :mod:`fleet.runtime.kube.decode`, write responses are not parsed.
Errors are fleet's: ``KubeUnavailable`` (retry later), ``KubeConflict`` (lost a race on
``resourceVersion``), ``KubeNotFound``; others become ``KubeError``. Every call's outcome
is told to the client's :class:`~fleet.runtime.kube.health.ApiHealth` (``/readyz``, and
the error counts of ``/metrics``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import kubernetes
import msgspec

from fleet.contracts import CRD_GROUP, CRD_VERSION, FINALIZER
from fleet.runtime.fencing import OPEN, WriteFence
from fleet.runtime.kube.decode import (
    KubeDecodeError,
    KubeObject,
    ObjectList,
    decode_list,
    decode_loose,
    decode_object,
)
from fleet.runtime.kube.errors import (
    KubeConflict,
    KubeError,
    KubeNotFound,
    KubeUnavailable,
    translate,
)
from fleet.runtime.kube.health import ApiHealth

__all__ = [
    "BOOTSTRAP_TOKENS",
    "DEPLOYMENTS",
    "DEPLOYMENT_REVISIONS",
    "DEVICES",
    "ENROLLMENT_REQUESTS",
    "KubeClient",
    "KubeConflict",
    "KubeError",
    "KubeNotFound",
    "KubeObject",
    "KubeUnavailable",
    "ObjectList",
    "Resource",
    "translate",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
MERGE_PATCH = "application/merge-patch+json"


class Resource(msgspec.Struct, frozen=True):
    """A custom resource type of the fleet group."""

    plural: str
    namespaced: bool


DEPLOYMENTS = Resource("deployments", namespaced=True)
DEVICES = Resource("devices", namespaced=False)
DEPLOYMENT_REVISIONS = Resource("deploymentrevisions", namespaced=True)
ENROLLMENT_REQUESTS = Resource("enrollmentrequests", namespaced=False)
BOOTSTRAP_TOKENS = Resource("bootstraptokens", namespaced=False)


class KubeClient:
    """Blocking calls on custom objects; every method may block: never on the loop."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        timeout: float = 10.0,
        health: ApiHealth | None = None,
        fence: WriteFence = OPEN,
    ) -> None:
        self.api_client = api_client
        self.fence = fence  # asked before every write (create, patch, delete)
        self.api = kubernetes.client.CustomObjectsApi(api_client)
        self.timeout = timeout
        self.health = health if health is not None else ApiHealth()

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, _request_timeout=self.timeout, **kwargs)
        except Exception as exc:
            error = translate(exc, what=what)
            self.health.failed(what.split(" ", 1)[0], error)  # the verb: list, get, patch...
            raise error from exc
        self.health.answered()
        return result

    def _raw(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
        """The response body, unparsed (errors still raise, translated)."""
        resp = self._call(what, fn, *args, _preload_content=False, **kwargs)
        try:
            data: bytes = resp.read()
        except Exception as exc:  # the connection broke while reading
            raise translate(exc, what=what) from exc
        finally:
            resp.release_conn()
        return data

    def list_objects(self, resource: Resource, *, namespace: str | None) -> ObjectList:
        """Every object of ``resource`` (in ``namespace``, or all), decoded one by one:
        an unusable object is left out and named in ``problems``, never fatal."""
        if namespace is None:
            what = f"list {resource.plural}"
            fn: Callable[..., Any] = self.api.list_cluster_custom_object
            args: tuple[Any, ...] = (CRD_GROUP, CRD_VERSION, resource.plural)
        else:
            what = f"list {resource.plural} in {namespace}"
            fn = self.api.list_namespaced_custom_object
            args = (CRD_GROUP, CRD_VERSION, namespace, resource.plural)
        try:
            return decode_list(self._raw(what, fn, *args), what=what)
        except KubeDecodeError as exc:
            raise KubeError(str(exc)) from exc

    def get_object(self, resource: Resource, *, namespace: str | None, name: str) -> KubeObject:
        """One object, decoded bounded (:class:`KubeError` if it is unusable)."""
        what = f"get {resource.plural} {namespace}/{name}"
        if resource.namespaced:
            fn: Callable[..., Any] = self.api.get_namespaced_custom_object
            args: tuple[Any, ...] = (CRD_GROUP, CRD_VERSION, namespace, resource.plural, name)
        else:
            fn = self.api.get_cluster_custom_object
            args = (CRD_GROUP, CRD_VERSION, resource.plural, name)
        try:
            return decode_object(self._raw(what, fn, *args))
        except KubeDecodeError as exc:
            raise KubeError(f"{what}: {exc}") from exc

    def list(self, resource: Resource, *, namespace: str | None) -> dict[str, Any]:
        """The list response as plain values, for display (``fleetctl``): a value nested
        too deep to show is replaced by ``TOO_DEEP`` (:func:`decode_loose`), never fatal."""
        if namespace is None:
            what = f"list {resource.plural}"
            fn: Callable[..., Any] = self.api.list_cluster_custom_object
            args: tuple[Any, ...] = (CRD_GROUP, CRD_VERSION, resource.plural)
        else:
            what = f"list {resource.plural} in {namespace}"
            fn = self.api.list_namespaced_custom_object
            args = (CRD_GROUP, CRD_VERSION, namespace, resource.plural)
        return self._loose(what, self._raw(what, fn, *args))

    def get(self, resource: Resource, *, namespace: str | None, name: str) -> dict[str, Any]:
        """One object as plain values, for display; bounded as :meth:`list`."""
        what = f"get {resource.plural} {namespace}/{name}"
        if resource.namespaced:
            fn: Callable[..., Any] = self.api.get_namespaced_custom_object
            args: tuple[Any, ...] = (CRD_GROUP, CRD_VERSION, namespace, resource.plural, name)
        else:
            fn = self.api.get_cluster_custom_object
            args = (CRD_GROUP, CRD_VERSION, resource.plural, name)
        return self._loose(what, self._raw(what, fn, *args))

    @staticmethod
    def _loose(what: str, data: bytes) -> dict[str, Any]:
        try:
            value = decode_loose(data)
        except KubeDecodeError as exc:
            raise KubeError(f"{what}: {exc}") from exc
        if not isinstance(value, dict):
            raise KubeError(f"{what}: the API answered {type(value).__name__}, not an object")
        return value

    def create(self, resource: Resource, *, body: Mapping[str, Any]) -> None:
        name = body["metadata"]["name"]
        what = f"create {resource.plural} {name}"
        self.fence.check(what)
        if resource.namespaced:
            namespace = body["metadata"]["namespace"]
            self._raw(
                what,
                self.api.create_namespaced_custom_object,
                CRD_GROUP,
                CRD_VERSION,
                namespace,
                resource.plural,
                dict(body),
            )
        else:
            self._raw(
                what,
                self.api.create_cluster_custom_object,
                CRD_GROUP,
                CRD_VERSION,
                resource.plural,
                dict(body),
            )

    def patch(
        self,
        resource: Resource,
        *,
        namespace: str | None,
        name: str,
        body: Mapping[str, Any],
        status: bool = False,
    ) -> None:
        """A JSON merge patch of the object (``status=True``: of its status subresource)."""
        what = f"patch {'status of ' if status else ''}{resource.plural} {namespace}/{name}"
        self.fence.check(what)
        fn: Callable[..., Any]
        if resource.namespaced:
            fn = (
                self.api.patch_namespaced_custom_object_status
                if status
                else self.api.patch_namespaced_custom_object
            )
            args: tuple[Any, ...] = (CRD_GROUP, CRD_VERSION, namespace, resource.plural, name)
        else:
            fn = (
                self.api.patch_cluster_custom_object_status
                if status
                else self.api.patch_cluster_custom_object
            )
            args = (CRD_GROUP, CRD_VERSION, resource.plural, name)
        self._raw(what, fn, *args, dict(body), _content_type=MERGE_PATCH)

    def delete(self, resource: Resource, *, namespace: str | None, name: str) -> None:
        what = f"delete {resource.plural} {namespace}/{name}"
        self.fence.check(what)
        try:
            if resource.namespaced:
                self._raw(
                    what,
                    self.api.delete_namespaced_custom_object,
                    CRD_GROUP,
                    CRD_VERSION,
                    namespace,
                    resource.plural,
                    name,
                )
            else:
                self._raw(
                    what,
                    self.api.delete_cluster_custom_object,
                    CRD_GROUP,
                    CRD_VERSION,
                    resource.plural,
                    name,
                )
        except KubeNotFound:
            pass

    def set_finalizer(
        self, resource: Resource, *, namespace: str | None, name: str, present: bool
    ) -> bool:
        """Add or remove fleet's finalizer, keeping everyone else's.

        Read-modify-write guarded by ``resourceVersion`` (a 409 retries with a fresh read).
        Returns False when the object is gone (nothing left to hold).
        """
        for _attempt in range(5):
            try:
                obj = self.get_object(resource, namespace=namespace, name=name)
            except KubeNotFound:
                return False
            current = list(obj.finalizers)
            wanted = [f for f in current if f != FINALIZER] + ([FINALIZER] if present else [])
            if wanted == current:
                return True
            body: dict[str, Any] = {"metadata": {"finalizers": wanted}}
            if obj.resource_version:
                body["metadata"]["resourceVersion"] = obj.resource_version
            try:
                self.patch(resource, namespace=namespace, name=name, body=body)
                return True
            except KubeConflict:
                continue
            except KubeNotFound:
                return False
        raise KubeConflict(f"finalizer of {resource.plural} {namespace}/{name}: 5 conflicts")
