"""The thin Kubernetes layer: one configured client and the few calls the operator makes.

Why it exists: only ``fleet.runtime`` may touch the ``kubernetes`` client. Actors see
:class:`KubeObject` (frozen, client-free) and :class:`KubeGateway`'s methods, which run the
blocking client calls on the gateway's own small thread pools and hand back
:class:`concurrent.futures.Future` objects (use :func:`fleet.runtime.aiokit.loop.tell_when_done`).

What it must never do: run a blocking client call on the asyncio loop or on an actor's
thread, patch anything but merge patches (custom resources take no strategic merge), or
let the client parse what the operator reads (``json.loads`` dies on a spec nested 1,000
deep): reads go through :mod:`fleet.runtime.kube.decode`, write responses are not parsed.
Errors are fleet's: ``KubeUnavailable`` (retry later), ``KubeConflict`` (lost a race on
``resourceVersion``), ``KubeNotFound``; others become ``KubeError``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import kubernetes
import msgspec
import urllib3

from fleet.contracts import CRD_GROUP, CRD_VERSION, FINALIZER
from fleet.errors import ConfigError, PermanentError, TemporaryError
from fleet.runtime.kube.decode import (
    KubeDecodeError,
    KubeObject,
    ObjectList,
    decode_list,
    decode_loose,
    decode_object,
)

__all__ = [
    "DEPLOYMENTS",
    "DEVICES",
    "KubeClient",
    "KubeConflict",
    "KubeError",
    "KubeGateway",
    "KubeNotFound",
    "KubeObject",
    "KubeUnavailable",
    "ObjectList",
    "Resource",
    "make_api_client",
    "namespaces_or_all",
    "translate",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
MERGE_PATCH = "application/merge-patch+json"


class KubeError(PermanentError):
    """The API server refused a request (the message has its status and reason)."""


class KubeNotFound(KubeError):
    """The object (or its resource type) does not exist."""


class KubeConflict(TemporaryError):
    """Another writer changed the object first (409): read it again and retry."""


class KubeUnavailable(TemporaryError):
    """The API server cannot be reached or answered 5xx/429."""


def make_api_client(
    *, kube_url: str | None = None, kubeconfig: str | None = None, context: str | None = None
) -> kubernetes.client.ApiClient:
    """A client for ``kube_url`` (plain HTTP, e.g. the emulator), else the kubeconfig
    (``kubeconfig`` or ``$KUBECONFIG`` or ``~/.kube/config``), else in-cluster config."""
    config = kubernetes.client.Configuration()
    if kube_url:
        config.host = kube_url
        return kubernetes.client.ApiClient(config)
    path = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        if path or os.path.exists(os.path.expanduser("~/.kube/config")):
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, context=context, client_configuration=config
            )
        else:
            kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
    except (kubernetes.config.ConfigException, OSError) as exc:
        raise ConfigError(
            f"no Kubernetes configuration: kubeconfig {path or '~/.kube/config'!r} and "
            f"in-cluster config both failed: {exc}"
        ) from exc
    return kubernetes.client.ApiClient(config)


def translate(exc: BaseException, *, what: str) -> BaseException:
    """Turn a client/transport error into fleet's error for ``what``."""
    if isinstance(exc, kubernetes.client.ApiException):
        status = exc.status or 0
        text = f"{what}: {status} {exc.reason}"
        if status == 404:
            return KubeNotFound(text)
        if status == 409:
            return KubeConflict(text)
        if status == 429 or status >= 500:
            return KubeUnavailable(text)
        return KubeError(text)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return KubeUnavailable(f"{what}: {exc!r}")
    return exc


class Resource(msgspec.Struct, frozen=True):
    """A custom resource type of the fleet group."""

    plural: str
    namespaced: bool


DEPLOYMENTS = Resource("deployments", namespaced=True)
DEVICES = Resource("devices", namespaced=False)


class KubeClient:
    """Blocking calls on custom objects; every method may block: never on the loop."""

    def __init__(self, api_client: kubernetes.client.ApiClient, *, timeout: float = 10.0) -> None:
        self.api_client = api_client
        self.api = kubernetes.client.CustomObjectsApi(api_client)
        self.timeout = timeout

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, _request_timeout=self.timeout, **kwargs)
        except Exception as exc:
            raise translate(exc, what=what) from exc

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


class KubeGateway:
    """:class:`KubeClient` calls run on small thread pools; results come back as futures.

    Two pools, so that thousands of Device writes never delay a Deployment's status or
    finalizer: ``deployments`` (2 threads) and ``devices`` (``device_workers`` threads).
    """

    def __init__(self, client: KubeClient, *, device_workers: int = 4) -> None:
        self.client = client
        self._deployments = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="kube-deployments"
        )
        self._devices = concurrent.futures.ThreadPoolExecutor(
            max_workers=device_workers, thread_name_prefix="kube-devices"
        )

    def shutdown(self) -> None:
        self._deployments.shutdown(wait=True, cancel_futures=True)
        self._devices.shutdown(wait=True, cancel_futures=True)

    def patch_deployment_status(
        self, *, namespace: str, name: str, status: Mapping[str, Any]
    ) -> concurrent.futures.Future[None]:
        return self._deployments.submit(
            self.client.patch,
            DEPLOYMENTS,
            namespace=namespace,
            name=name,
            body={"status": status},
            status=True,
        )

    def set_deployment_finalizer(
        self, *, namespace: str, name: str, present: bool
    ) -> concurrent.futures.Future[bool]:
        return self._deployments.submit(
            self.client.set_finalizer, DEPLOYMENTS, namespace=namespace, name=name, present=present
        )

    def list_device_names(self) -> concurrent.futures.Future[list[str]]:
        def run() -> list[str]:
            listed = self.client.list_objects(DEVICES, namespace=None)
            for problem in listed.problems:
                logger.warning("skipping an unusable Device resource: %s", problem)
            return [obj.name for obj in listed.objects]

        return self._devices.submit(run)

    def write_device(
        self,
        *,
        name: str,
        labels: Mapping[str, str | None] | None,
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
        create: bool,
    ) -> concurrent.futures.Future[None]:
        """Create the Device if ``create`` (409 is fine), then merge ``labels``/``status``.

        ``labels`` is a merge patch of ``metadata.labels`` (``None`` values remove a label).
        A Device created here carries its labels already: two calls, not three (the
        status subresource cannot be set on create).
        """

        def run() -> None:
            created = False
            if create:
                set_labels = {k: v for k, v in (labels or {}).items() if v is not None}
                body = {
                    "apiVersion": f"{CRD_GROUP}/{CRD_VERSION}",
                    "kind": "Device",
                    "metadata": {"name": name, "labels": set_labels},
                    "spec": dict(spec),
                }
                with contextlib.suppress(KubeConflict):
                    self.client.create(DEVICES, body=body)
                    created = True
            if labels and not created:
                self.client.patch(
                    DEVICES, namespace=None, name=name, body={"metadata": {"labels": dict(labels)}}
                )
            self.client.patch(
                DEVICES, namespace=None, name=name, body={"status": dict(status)}, status=True
            )

        return self._devices.submit(run)

    def delete_device(self, *, name: str) -> concurrent.futures.Future[None]:
        return self._devices.submit(self.client.delete, DEVICES, namespace=None, name=name)


def namespaces_or_all(namespaces: Sequence[str]) -> list[str | None]:
    """The watch scopes for ``--namespace`` values: each one, or the whole cluster."""
    return list(dict.fromkeys(namespaces)) if namespaces else [None]
