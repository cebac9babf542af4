"""A Kubernetes API stand-in for the demo, the load swarm and tests (kmock, made more real).

It is a development stand-in for a cluster, never a production component.

kmock 0.8's ``KubernetesEmulator`` stores objects and serves list/get/create/patch/delete/watch
over real HTTP, which is what the real ``kubernetes`` client needs. What it lacks, and this
module adds, because the operator relies on it against a real API server:

* ``metadata.uid``, ``creationTimestamp``, ``generation`` (bumped on spec changes only) and a
  cluster-wide ``resourceVersion``; a list's ``metadata.resourceVersion`` is the current one;
* optimistic concurrency: a patch that carries ``metadata.resourceVersion`` applies only
  while the object is still at that version (409 Conflict otherwise), as the real API
  server does: compare-and-swap writes (a bootstrap token's uses) rely on it;
* the status subresource rule: a patch to ``.../status`` changes only ``status``, a patch to the
  object itself never changes ``status``;
* CRDs from ``deploy/crds/*.yaml`` become served resources (discovery, short names, scope);
* ``compact()`` ends every open watch and makes older resource versions answer 410 Gone, so
  tests can drive the relist path;
* O(1) lookups by name, and no request history (the stock emulator scans every object and
  every past request on every request, which makes thousands of objects crawl).

Known remaining gaps (kept on purpose: the operator must cope): a watch ignores
``timeoutSeconds`` and ``resourceVersion`` (it replays every object as ADDED, then streams),
label/field selectors are ignored, and create answers with an empty body.

Run it in a thread (:class:`KubeEmulator`) or as a process: ``python -m
fleet.devtools.kube_emulator --crds deploy/crds`` prints ``READY <port>`` when it serves.
Nothing shipped to a cluster or a device (``fleet.actors``, ``fleet-agent``,
``fleet-operator``) may import it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import copy
import datetime
import itertools
import pathlib
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import attrs
import kmock
import yaml
from kmock._internal import apps, dicts, enums, k8s, k8s_dicts, rendering

CRD_DIR = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "crds"
_CLOSE = "_CLOSE_WATCHES"


class FleetKubeEmulator(kmock.KubernetesEmulator):  # type: ignore[misc]
    """kmock's emulator with uids, generations, resource versions and 410 on compaction."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._rv = itertools.count(1)
        self._current_rv = 0
        self._compacted_rv = 0
        self.patches: collections.Counter[str] = collections.Counter()  # "plural[/sub]" -> count
        self._updating = asyncio.Lock()  # a version check and its patch, as one step

    def _next_rv(self) -> str:
        self._current_rv = next(self._rv)
        return str(self._current_rv)

    def install_crds(self, directory: pathlib.Path = CRD_DIR) -> list[dict[str, Any]]:
        """Serve every CRD found in ``directory`` and store the CRD objects themselves."""
        crds = []
        for path in sorted(directory.glob("*.yaml")):
            crd = yaml.safe_load(path.read_text())
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            names = spec["names"]
            for version in spec["versions"]:
                key = f"{spec['group']}/{version['name']}/{names['plural']}"
                self.resources[key] = kmock.ResourceInfo(
                    namespaced=spec["scope"] == "Namespaced",
                    kind=names["kind"],
                    singular=names.get("singular"),
                    shortnames=set(names.get("shortNames", [])),
                    categories=set(names.get("categories", [])),
                    verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
                    subresources=set(version.get("subresources", {})),
                )
            key = (
                "apiextensions.k8s.io/v1/customresourcedefinitions",
                None,
                crd["metadata"]["name"],
            )
            self.objects[key] = crd
            crds.append(crd)
        return crds

    async def compact(self) -> None:
        """Expire every resource version seen so far and end every open watch."""
        async with self._lock:
            self._compacted_rv = self._current_rv + 1  # resuming from "now" is too old too
            for bus in list(self._buses.values()):
                await bus.put({"type": _CLOSE})

    # -- request handling -------------------------------------------------------------------

    async def _handle(self, request: rendering.Request) -> Any:
        # kmock matches each request against every request it ever served (quadratic): keep
        # only the current one so a 10,000-device benchmark stays linear.
        del self._requests[:-1]
        for payload in self._payloads:
            del payload._requests[:]
        if request.resource is not None and isinstance(request.data, dict):
            if request.action == enums.action.CREATE:
                self._stamp_create(request)
            elif request.action == enums.action.UPDATE:
                async with self._updating:
                    self._stamp_update(request)
                    plural = request.resource.plural
                    self.patches[
                        f"{plural}/{request.subresource}" if request.subresource else plural
                    ] += 1
                    return await super()._handle(request)
        return await super()._handle(request)

    def _stamp_create(self, request: rendering.Request) -> None:
        meta = request.data.setdefault("metadata", {})
        if request.namespace is not None:
            meta.setdefault("namespace", request.namespace)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        meta["resourceVersion"] = self._next_rv()
        if self._has_status(request):
            request.data.pop("status", None)

    def _stamp_update(self, request: rendering.Request) -> None:
        data = request.data
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
        if expected is not None and key in self.objects and not self.objects[key].deleted:
            current = self.objects[key].last.raw.get("metadata", {}).get("resourceVersion")
            if str(expected) != current:
                raise _Conflict()
        if key in self.objects and not self.objects[key].deleted:
            old = self.objects[key].last.raw
            if "spec" in data and request.subresource != "status":
                new_spec = dicts.patch_dict(copy.deepcopy(old.get("spec", {})), data["spec"])
                if new_spec != old.get("spec"):
                    meta["generation"] = old.get("metadata", {}).get("generation", 1) + 1
        meta["resourceVersion"] = self._next_rv()

    def _has_status(self, request: rendering.Request) -> bool:
        resource = request.resource
        return resource in self.resources and "status" in self.resources[resource].subresources

    async def _serve_list(self, request: rendering.Request) -> Any:
        result = await super()._serve_list(request)
        result["metadata"]["resourceVersion"] = str(self._current_rv)
        return result

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        since = request.params.get("resourceVersion")
        if since and since.isdigit() and 0 < int(since) < self._compacted_rv:
            yield b""
            yield {"type": "ERROR", "object": _gone(since, self._compacted_rv)}
            return
        async for event in super()._serve_watch(request):
            if isinstance(event, dict) and event.get("type") == _CLOSE:
                return
            yield event

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


@attrs.frozen
class _Conflict(k8s.KubernetesObjectConflictError):  # type: ignore[misc]
    """A patch's ``resourceVersion`` is not the object's any more."""

    reason: str = "Conflict"
    message: str = "the object has been modified; please apply your changes to the latest version"


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _gone(since: str, compacted: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "reason": "Expired",
        "code": 410,
        "message": f"too old resource version: {since} ({compacted})",
    }


class KubeEmulator:
    """The emulator served on 127.0.0.1 from its own thread and event loop.

    Off the fleet loop on purpose: the operator's blocking client calls and the server must
    not share a loop. ``url`` is ready once :meth:`start` returns.
    """

    def __init__(self, *, crd_dir: pathlib.Path = CRD_DIR, port: int | None = None) -> None:
        self._crd_dir = crd_dir
        self._port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.emulator: FleetKubeEmulator | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="kube-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"kube emulator did not start within {timeout} s")
        if self._error is not None:
            raise RuntimeError("kube emulator failed to start") from self._error

    def stop(self, *, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stopping is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"kube emulator thread did not stop within {timeout} s")
        self._thread = None

    def compact(self, *, timeout: float = 5.0) -> None:
        """See :meth:`FleetKubeEmulator.compact`; callable from any thread but the server's."""
        assert self._loop is not None
        assert self.emulator is not None
        asyncio.run_coroutine_threadsafe(self.emulator.compact(), self._loop).result(timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        emulator = FleetKubeEmulator()
        emulator.install_crds(self._crd_dir)
        async with emulator, apps.Server(emulator, port=self._port) as server:
            self.emulator = emulator
            self.port = server.port
            self._ready.set()
            await self._stopping.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the Kubernetes API emulator.")
    parser.add_argument("--crds", type=pathlib.Path, default=CRD_DIR, help="CRD directory")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: a free one)")
    args = parser.parse_args(argv)
    server = KubeEmulator(crd_dir=args.crds, port=args.port or None)
    server.start()
    sys.stdout.write(f"READY {server.port}\n")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()  # runs until stdin closes (the parent exits or closes the pipe)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
