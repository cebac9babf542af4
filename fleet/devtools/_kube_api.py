"""The API emulator's server: kmock's ``KubernetesEmulator``, made to answer as an API server does.

See :mod:`fleet.devtools.kube_emulator` for what it adds and why. This module owns the
objects and their writes (versions, generations, conflicts, the status rule); the reads
are :mod:`._kube_reads`, the wire :mod:`._kube_http`, and the pure parts
``_kube_discovery``, ``_kube_openapi``, ``_kube_selectors``, ``_kube_tables`` and
``_kube_validation``. It subclasses kmock's private internals, so it is a development
stand-in: nothing shipped may import it.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import datetime
import itertools
import pathlib
import secrets
import uuid
from typing import Any, Final

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import dicts, enums, k8s, k8s_dicts, references, rendering

from . import _kube_apply as apply
from . import _kube_builtin as builtin
from . import _kube_discovery as discovery
from . import _kube_http as http
from . import _kube_reviews as reviews
from ._kube_reads import CLOSE, ReadsMixin
from ._kube_tables import crd_columns
from ._kube_validation import ApiError, check_patch, check_strict

CRD_DIR: Final = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "crds"
_CRDS: Final = discovery.ServedResource(
    group="apiextensions.k8s.io",
    version="v1",
    plural="customresourcedefinitions",
    kind="CustomResourceDefinition",
    singular="customresourcedefinition",
    namespaced=False,
    short_names=("crd", "crds"),
    categories=("api-extensions",),
    subresources=("status",),
)


@attrs.frozen
class _Conflict(k8s.KubernetesObjectConflictError):  # type: ignore[misc]
    """A patch's ``resourceVersion`` is not the object's any more."""

    reason: str = "Conflict"
    message: str = "the object has been modified; please apply your changes to the latest version"


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FleetKubeEmulator(ReadsMixin, kmock.KubernetesEmulator):  # type: ignore[misc]
    """kmock's emulator with uids, generations, resource versions, selectors, Tables, 410."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._rv = itertools.count(1)
        self._current_rv = 0
        self._compacted_rv = 0
        self.patches: collections.Counter[str] = collections.Counter()  # "plural[/sub]" -> count
        self._updating = asyncio.Lock()  # a version check and its patch, as one step
        self.served: dict[tuple[str, str, str], discovery.ServedResource] = {}
        self.reviews = reviews.Reviews()  # TokenReview, SubjectAccessReview (_kube_reviews)
        for res in (*discovery.CORE, *discovery.COORDINATION, *builtin.KINDS, _CRDS):
            self._serve(res)
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            key = (references.resource("", "v1", "namespaces"), None, name)
            self.objects[key] = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": self._stamped(name),
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }

    def _next_rv(self) -> str:
        self._current_rv = next(self._rv)
        return str(self._current_rv)

    def _stamped(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "uid": str(uuid.uuid4()),
            "creationTimestamp": _now(),
            "resourceVersion": self._next_rv(),
        }

    def _serve(self, res: discovery.ServedResource) -> None:
        self.served[(res.group, res.version, res.plural)] = res
        self.resources[f"{res.group_version}/{res.plural}"] = kmock.ResourceInfo(
            namespaced=res.namespaced,
            kind=res.kind,
            singular=res.singular,
            shortnames=set(res.short_names),
            categories=set(res.categories),
            verbs=set(res.verbs),
            subresources=set(res.subresources),
        )

    def install_crds(self, directory: pathlib.Path = CRD_DIR) -> list[dict[str, Any]]:
        """Serve every CRD found in ``directory`` and store the CRD objects themselves."""
        crds = []
        for path in sorted(directory.glob("*.yaml")):
            crd = yaml.safe_load(path.read_text())
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            spec, names = crd["spec"], crd["spec"]["names"]
            for version in spec["versions"]:
                self._serve(
                    discovery.ServedResource(
                        group=spec["group"],
                        version=version["name"],
                        plural=names["plural"],
                        kind=names["kind"],
                        singular=names.get("singular") or names["kind"].lower(),
                        namespaced=spec["scope"] == "Namespaced",
                        short_names=tuple(names.get("shortNames", [])),
                        categories=tuple(names.get("categories", [])),
                        subresources=tuple(version.get("subresources", {})),
                        columns=crd_columns(version),
                        schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                    )
                )
            crd.setdefault("metadata", {}).update(self._stamped(crd["metadata"]["name"]))
            key = (_CRDS.group + "/v1/customresourcedefinitions", None, crd["metadata"]["name"])
            self.objects[key] = crd
            crds.append(crd)
        return crds

    async def compact(self) -> None:
        """Expire every resource version seen so far and end every open watch."""
        async with self._lock:
            self._compacted_rv = self._current_rv + 1  # resuming from "now" is too old too
            for bus in list(self._buses.values()):
                await bus.put({"type": CLOSE})

    # -- the HTTP entry point ----------------------------------------------------------------

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """One request: discovery here, the rest through kmock; errors as a ``Status``.

        Replaces kmock's entry point, which keeps every request and every error for
        assertions (memory that grows with the load swarm) and answers tracebacks.
        """
        response: aiohttp.web.StreamResponse | None = None
        try:
            if raw.method == "GET" and (
                found := http.discovery_response(raw, self.served.values())
            ):
                return found
            if (reviewed := await self.reviews.answer(raw)) is not None:
                return reviewed
            request = await http.parse(raw)
            if request.action == enums.action.WATCH and request.resource is not None:
                return await http.stream(raw, self._serve_watch(request))
            self._requests.append(request)  # kmock's views match a request among these
            try:
                response = await self._handle(request)
            except rendering.StreamingError as exc:
                response = exc.args[0]
                raise exc.__cause__ or exc from None
            if request.action == enums.action.CREATE and response.status == 200:
                response.set_status(201)
            return response
        except Exception as exc:  # any fault is the client's answer, never a dead server
            return await http.error_response(exc, response)

    async def _handle(self, request: rendering.Request) -> Any:
        # kmock matches each request against every request it ever served (quadratic): keep
        # only the current one so a 10,000-device benchmark stays linear.
        del self._requests[:-1]
        for payload in self._payloads:
            del payload._requests[:]
        info = self._info(request)
        if request.resource is not None and request.action in (
            enums.action.LIST,
            enums.action.WATCH,
        ):
            self._selectors(request, info)  # a bad selector is a 400 before anything else
        if (
            request.action in (enums.action.CREATE, enums.action.UPDATE)
            and request.params.get("fieldValidation") == "Strict"
            and info is not None
            and info.schema
        ):
            check_strict(request.data, kind=info.kind, version=info.version, schema=info.schema)
        if request.resource is not None and request.action == enums.action.CREATE:
            self._check_create(request, info)
            self._stamp_create(request, info)
            return await super()._handle(request)
        if (
            request.resource is not None
            and request.action == enums.action.UPDATE
            and apply.is_apply(request.headers.get("Content-Type", ""))
        ):  # server-side apply: create-if-absent, managed fields (_kube_apply)
            return await apply.serve(self, request, info)
        if request.resource is not None and request.action in (
            enums.action.UPDATE,
            enums.action.DELETE,
        ):
            key = (request.resource, request.namespace, request.name)
            if key not in self.objects or self.objects[key].deleted:
                raise self._not_found(request, request.name)
        if request.resource is not None and request.action == enums.action.UPDATE:
            custom = info is None or info.columns is not None
            check_patch(request.headers.get("Content-Type", ""), request.data, custom=custom)
            async with self._updating:
                self._stamp_update(request)
                plural = request.resource.plural
                self.patches[
                    f"{plural}/{request.subresource}" if request.subresource else plural
                ] += 1
                return await super()._handle(request)
        return await super()._handle(request)

    def _check_create(
        self, request: rendering.Request, info: discovery.ServedResource | None
    ) -> None:
        data = request.data
        if not isinstance(data, dict):
            raise ApiError(400, "BadRequest", "the body of a create must be a JSON object")
        meta = data.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{secrets.token_hex(3)[:5]}"
        if not isinstance(meta.get("name"), str) or not meta["name"]:
            raise ApiError(
                422, "Invalid", "metadata.name: Required value: name or generateName is required"
            )
        if request.namespace and meta.get("namespace") not in (None, "", request.namespace):
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not "
                "match the namespace sent on the request",
            )
        key = (request.resource, request.namespace or meta.get("namespace"), meta["name"])
        if key in self.objects and not self.objects[key].deleted:
            raise ApiError(
                409,
                "AlreadyExists",
                self._not_found(request, meta["name"]).message.replace(
                    "not found", "already exists"
                ),
            )
        if info is not None:
            data.setdefault("apiVersion", info.group_version)
            data.setdefault("kind", info.kind)

    def _stamp_create(
        self, request: rendering.Request, info: discovery.ServedResource | None
    ) -> None:
        meta = request.data["metadata"]
        if request.namespace is not None:
            meta.setdefault("namespace", request.namespace)
        meta.update(self._stamped(meta["name"]))
        meta["generation"] = 1
        if info is not None and "status" in info.subresources:
            request.data.pop("status", None)

    def _stamp_update(self, request: rendering.Request) -> None:
        data = request.data
        if isinstance(data, list):  # a JSON patch: applied as sent, a new version stamped
            data.append(
                {"op": "add", "path": "/metadata/resourceVersion", "value": self._next_rv()}
            )
            return
        if request.subresource == "status":
            for key in list(data):
                if key not in ("status", "metadata"):
                    del data[key]
            data["metadata"] = {}
        elif self._has_status(request):
            data.pop("status", None)
        meta = data.setdefault("metadata", {})
        meta.pop("generation", None)
        expected = meta.pop("resourceVersion", None)
        key = (request.resource, request.namespace, request.name)
        old = self.objects[key].last.raw
        if expected is not None and str(expected) != old.get("metadata", {}).get("resourceVersion"):
            raise _Conflict()
        if isinstance(data.get("spec"), dict) and request.subresource != "status":
            new_spec = dicts.patch_dict(copy.deepcopy(old.get("spec", {})), data["spec"])
            if new_spec != old.get("spec"):
                meta["generation"] = old.get("metadata", {}).get("generation", 1) + 1
        meta["resourceVersion"] = self._next_rv()

    def _has_status(self, request: rendering.Request) -> bool:
        info = self._info(request)
        return info is not None and "status" in info.subresources

    def _KubernetesEmulator__get_objs(
        self, request: rendering.Request, strict: bool
    ) -> list[k8s_dicts.Object]:
        if request.name is not None and (strict or request.namespace is not None):
            key = (request.resource, request.namespace, request.name)
            return [self.objects[key]] if key in self.objects else []
        objs: list[k8s_dicts.Object] = []
        for (resource, namespace, name), obj in self.objects.items():
            namespace_ok = (
                namespace == request.namespace
                if strict
                else (request.namespace is None or namespace == request.namespace)
            )
            name_ok = request.name is None or name == request.name
            if resource == request.resource and namespace_ok and name_ok:
                objs.append(obj)
        return objs
