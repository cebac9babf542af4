"""The API emulator's reads: lists, gets and watches, with selectors and Tables.

It exists to keep the read side of ``_kube_api.FleetKubeEmulator`` (a mixin of it) apart
from its writes: what a list, a get or a watch answers, filtered by label and field
selectors (a malformed one is a 400 before anything is read), as a ``<Kind>List`` for JSON
clients or a ``meta.k8s.io/v1`` Table when kubectl asks for one.

It must never change an object, and never cost a plain JSON list (the operator's) more
than kmock's own: selectors and Tables cost only the requests that ask for them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

from . import _kube_discovery as discovery
from ._kube_http import gone
from ._kube_selectors import SelectorError, fields_match, labels_match, parse_fields, parse_labels
from ._kube_tables import to_table, wants_table
from ._kube_validation import ApiError

CLOSE: Final = "_CLOSE_WATCHES"  # a bus item that ends every watch on it (compaction)


class ReadsMixin:
    """Reads of a kmock ``KubernetesEmulator`` subclass (which provides what is used here)."""

    # provided by the emulator (kmock's KubernetesEmulator and FleetKubeEmulator)
    objects: Any
    served: dict[tuple[str, str, str], discovery.ServedResource]
    _lock: Any
    _buses: Any
    _current_rv: int
    _compacted_rv: int

    def _info(self, request: Any) -> discovery.ServedResource | None:
        res = request.resource
        return None if res is None else self.served.get((res.group, res.version, res.plural))

    def _not_found(self, request: Any, name: str | None) -> ApiError:
        res = request.resource
        what = f"{res.plural}.{res.group}" if res.group else str(res.plural)
        details = {"name": name, "group": res.group, "kind": res.plural}
        return ApiError(404, "NotFound", f'{what} "{name}" not found', details)

    def _KubernetesEmulator__get_objs(self, request: Any, strict: bool) -> list[Any]:
        raise NotImplementedError  # the emulator's

    def _selectors(self, request: Any, info: discovery.ServedResource | None) -> Any:
        params = request.params
        label, field = params.get("labelSelector"), params.get("fieldSelector")
        if not label and not field:
            return None
        plural = info.plural if info is not None else str(request.resource.plural)
        try:
            return (parse_labels(label) if label else [], parse_fields(field or "", plural=plural))
        except SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from None

    @staticmethod
    def _matches(selectors: Any, obj: dict[str, Any], plural: str) -> bool:
        labels, fields = selectors
        meta = obj.get("metadata") or {}
        return labels_match(labels, meta.get("labels") or {}) and fields_match(
            fields, obj, plural=plural
        )

    def _render(
        self,
        request: Any,
        info: discovery.ServedResource | None,
        objs: list[dict[str, Any]],
        rv: str,
        *,
        headers: bool = True,
    ) -> dict[str, Any]:
        return to_table(
            objs,
            plural=str(request.resource.plural),
            columns=info.columns if info is not None else None,
            resource_version=rv,
            include_object=request.params.get("includeObject"),
            no_headers=not headers,
        )

    async def _serve_list(self, request: Any) -> Any:
        info = self._info(request)
        if info is None:
            return await super()._serve_list(request)
        selectors = self._selectors(request, info)
        async with self._lock:
            objs = self._KubernetesEmulator__get_objs(request, strict=False)
            items = [obj.raw for obj in objs if not obj.deleted]
        if selectors is not None:
            items = [item for item in items if self._matches(selectors, item, info.plural)]
        rv = str(self._current_rv)
        if wants_table(request.headers.get("Accept", "")):
            return self._render(request, info, items, rv)
        return {
            "apiVersion": info.group_version,
            "kind": f"{info.kind}List",
            "metadata": {"resourceVersion": rv},
            "items": items,
        }

    async def _serve_fetch(self, request: Any) -> Any:
        key = (request.resource, request.namespace, request.name)
        obj = self.objects[key] if key in self.objects else None  # noqa: SIM401  (no .get)
        if obj is None or obj.deleted:
            raise self._not_found(request, request.name)
        raw = obj.raw
        if wants_table(request.headers.get("Accept", "")):
            rv = str((raw.get("metadata") or {}).get("resourceVersion", ""))
            return self._render(request, self._info(request), [raw], rv)
        return raw

    async def _serve_watch(self, request: Any) -> AsyncIterator[Any]:
        since = request.params.get("resourceVersion")
        if since and since.isdigit() and 0 < int(since) < self._compacted_rv:
            yield b""
            yield {"type": "ERROR", "object": gone(since, self._compacted_rv)}
            return
        info = self._info(request)
        plural = str(request.resource.plural)
        selectors = self._selectors(request, info)
        table = wants_table(request.headers.get("Accept", "")) and info is not None
        bus = self._buses[request.resource]
        async with self._lock:  # the snapshot and the bus mark as one step: nothing is missed
            objs = self._KubernetesEmulator__get_objs(request, strict=False)
            items = [obj.raw for obj in objs if not obj.deleted]
            if table and since and since != "0" and since == str(self._current_rv):
                # kubectl get -w: nothing changed since its list, so no row printed twice.
                # Only for Tables (people): a controller's watch replays as before, since
                # a version bumped before its object is stored makes "nothing changed" racy.
                items = []
            mark = await bus.mark()
        first = True

        def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
            nonlocal first
            if table:
                rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
                obj, first = self._render(request, info, [obj], rv, headers=first), False
            return {"type": kind, "object": obj}

        try:  # from here on the mark is held: the finally must release it, however it ends
            yield b""  # the headers go now: a watch with nothing to say is still a watch
            for item in items:
                if selectors is None or self._matches(selectors, item, plural):
                    yield event("ADDED", item)
            if request.params.get("sendInitialEvents") == "true":
                yield self._bookmark(info)
            async for change in bus.stream(since=mark):
                if change.get("type") == CLOSE:
                    return
                obj = change.get("object") or {}
                meta = obj.get("metadata") or {}
                if request.namespace is not None and meta.get("namespace") != request.namespace:
                    continue
                if request.name is not None and meta.get("name") != request.name:
                    continue
                if selectors is None or self._matches(selectors, obj, plural):
                    yield event(change["type"], obj)
        finally:
            await bus.unmark(mark)

    def _bookmark(self, info: discovery.ServedResource | None) -> dict[str, Any]:
        """The end of a watch's replay (``sendInitialEvents=true``), as client-go expects it."""
        meta = {
            "resourceVersion": str(self._current_rv),
            "annotations": {"k8s.io/initial-events-end": "true"},
        }
        kind, api_version = (info.kind, info.group_version) if info else ("", "")
        return {
            "type": "BOOKMARK",
            "object": {"kind": kind, "apiVersion": api_version, "metadata": meta},
        }
