"""Server-side apply for the API emulator: a documented subset of what the API server does.

It exists because the agent's ``kubernetes`` runtime applies its manifests as a real
cluster wants them applied (``PATCH`` with ``Content-Type: application/apply-patch+yaml``,
``fieldManager``, ``force``), and its tests must meet an API that answers as one does.

What is emulated:

* create-if-absent (201), or a merge of the applied configuration into the live object
  (200); an apply that changes nothing writes nothing (no new ``resourceVersion``, no
  watch event), as on a real server;
* ``managedFields``: one ``Apply`` entry per field manager, its ``fieldsV1`` the leaf fields
  of what it applied (``{"f:spec": {"f:replicas": {}}}``). Lists are atomic (owned whole:
  no ``k:``/``i:`` keys). A field the manager applied before and no longer applies is
  removed, unless another manager owns it too;
* a conflict (409 ``Conflict``, naming the manager and the field) when the apply changes
  a field another manager owns, unless ``force=true``, which takes the field over;
* the rules of the emulator's other writes: ``generation`` bumped on a change outside
  ``metadata``/``status``, ``status`` of a resource with a status subresource ignored,
  ``fieldValidation=Strict`` against a CRD's schema, a namespaced object's namespace must
  exist (404), the built-in checks of :mod:`._kube_builtin` (422);
* the body may be JSON or YAML (JSON is YAML; :func:`load_body`).

Not emulated: ownership recorded for writes other than apply (a merge patch or a create
leaves ``managedFields`` as they were), ``k:``/``v:`` list keys, ``dryRun``, apply to a
subresource. It must never block the loop or write outside the emulator's lock.
"""

from __future__ import annotations

import copy
import datetime
import json
from collections.abc import Iterator
from typing import Any, Final

import aiohttp.web
import yaml

from . import _kube_builtin as builtin
from ._kube_discovery import ServedResource
from ._kube_validation import MAX_DEPTH, ApiError, check_strict

APPLY_TYPE: Final = "application/apply-patch+yaml"
MAX_BODY: Final = 3 * 1024 * 1024  # the API server's own request limit
_SYSTEM_META: Final = frozenset(
    {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
     "managedFields", "deletionTimestamp", "selfLink"}
)  # fmt: skip

Path = tuple[str, ...]


def is_apply(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == APPLY_TYPE


def load_body(body: bytes) -> Any:
    """An apply body: JSON, else YAML (safe, bounded by :data:`MAX_BODY`); 400 otherwise."""
    if len(body) > MAX_BODY:
        raise ApiError(413, "RequestEntityTooLarge", "the request body is too large")
    try:
        return json.loads(body)
    except ValueError:
        pass
    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise ApiError(
            400, "BadRequest", f"the apply body is neither JSON nor YAML: {exc}"
        ) from exc


def _leaves(value: dict[str, Any], prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    if len(prefix) > MAX_DEPTH:
        raise ApiError(400, "BadRequest", f"the object is nested deeper than {MAX_DEPTH}")
    for key, item in value.items():
        if isinstance(item, dict) and item:
            yield from _leaves(item, (*prefix, str(key)))
        else:
            yield (*prefix, str(key)), item


def _fields(obj: dict[str, Any], *, drop_status: bool) -> dict[Path, Any]:
    """The fields a manager owns by applying ``obj`` (identity and system fields excluded)."""
    found: dict[Path, Any] = {}
    for key, value in obj.items():
        if key in ("apiVersion", "kind") or (key == "status" and drop_status):
            continue
        if key == "metadata" and isinstance(value, dict):
            rest = {k: v for k, v in value.items() if k not in _SYSTEM_META}
            found.update((("metadata", *p), v) for p, v in _leaves(rest))
        elif isinstance(value, dict) and value:
            found.update(((key, *p), v) for p, v in _leaves(value))
        else:
            found[(key,)] = value
    return found


def _encode(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return tree


def _decode(tree: Any, prefix: Path = ()) -> set[Path]:
    if not isinstance(tree, dict) or len(prefix) > MAX_DEPTH:
        return set()
    paths: set[Path] = set()
    for key, sub in tree.items():
        if not isinstance(key, str) or not key.startswith("f:"):
            continue
        path = (*prefix, key[2:])
        paths |= _decode(sub, path) if sub else {path}
    return paths


def _owners(live: dict[str, Any]) -> dict[str, set[Path]]:
    owners: dict[str, set[Path]] = {}
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if isinstance(entry, dict) and isinstance(entry.get("manager"), str):
            owners.setdefault(entry["manager"], set()).update(_decode(entry.get("fieldsV1")))
    return owners


def _get(obj: Any, path: Path) -> Any:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def _set(obj: dict[str, Any], path: Path, value: Any) -> None:
    for part in path[:-1]:
        if not isinstance(obj.get(part), dict):
            obj[part] = {}
        obj = obj[part]
    obj[path[-1]] = copy.deepcopy(value)


def _unset(obj: dict[str, Any], path: Path) -> None:
    parents = []
    for part in path[:-1]:
        if not isinstance(obj.get(part), dict):
            return
        parents.append((obj, part))
        obj = obj[part]
    obj.pop(path[-1], None)
    for parent, part in reversed(parents):  # an emptied map goes too
        if parent[part]:
            break
        del parent[part]


_MISSING: Final = object()


def _check_identity(request: Any, info: ServedResource, config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise ApiError(400, "BadRequest", "the apply body must be an object")
    if config.get("apiVersion") != info.group_version or config.get("kind") != info.kind:
        raise ApiError(
            400,
            "BadRequest",
            f"the apply body is a {config.get('kind')!r} of {config.get('apiVersion')!r}, "
            f"not the {info.kind} of {info.group_version} its path names",
        )
    meta = config.get("metadata")
    if not isinstance(meta, dict) or meta.get("name") != request.name:
        raise ApiError(400, "BadRequest", "metadata.name must be the name in the request's path")
    if meta.get("namespace") not in (None, request.namespace):
        raise ApiError(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        )
    return config


async def serve(emulator: Any, request: Any, info: ServedResource | None) -> aiohttp.web.Response:
    """One apply request (see the module doc); ``emulator``: the FleetKubeEmulator."""
    if info is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if request.subresource:
        raise ApiError(405, "MethodNotAllowed", "apply to a subresource is not emulated")
    params = request.params
    manager = params.get("fieldManager")
    if not manager:
        raise ApiError(400, "BadRequest", "fieldManager is required for apply requests")
    force = params.get("force") == "true"
    config = _check_identity(request, info, request.data)
    if params.get("fieldValidation") == "Strict" and info.schema:
        check_strict(config, kind=info.kind, version=info.version, schema=info.schema)
    drop_status = "status" in info.subresources
    applied = _fields(config, drop_status=drop_status)
    key = (request.resource, request.namespace, request.name)
    async with emulator._updating, emulator._lock:
        found = emulator.objects[key] if key in emulator.objects else None  # noqa: SIM401
        live = None if found is None or found.deleted else copy.deepcopy(found.raw)
        if live is None:
            new = _created(emulator, request, info, config, applied, manager)
            event, status = "ADDED", 201
        else:
            new = _merged(live, applied, manager, force=force)
            if new is None:
                return aiohttp.web.json_response(live, status=200)
            if _spec(new) != _spec(live):
                meta = new["metadata"]
                meta["generation"] = int(live["metadata"].get("generation", 1)) + 1
            event, status = "MODIFIED", 200
        builtin.check_object(info, new)
        new["metadata"]["resourceVersion"] = emulator._next_rv()
        if found is None:
            emulator.objects[key] = new
        else:
            found.create(new)
        await emulator._buses[request.resource].put({"type": event, "object": copy.deepcopy(new)})
    return aiohttp.web.json_response(new, status=status)


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _created(  # noqa: PLR0917  (the request's parts, all needed)
    emulator: Any,
    request: Any,
    info: ServedResource,
    config: dict[str, Any],
    applied: dict[Path, Any],
    manager: str,
) -> dict[str, Any]:
    if info.namespaced:
        ns_key = (_NAMESPACES(request.resource), None, request.namespace)
        ns = emulator.objects[ns_key] if ns_key in emulator.objects else None  # noqa: SIM401
        if ns is None or ns.deleted:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{request.namespace}" not found',
                {"name": request.namespace, "kind": "namespaces"},
            )
    new: dict[str, Any] = {"apiVersion": info.group_version, "kind": info.kind}
    for path, value in applied.items():
        _set(new, path, value)
    stamped = emulator._stamped(request.name)
    stamped.pop("resourceVersion")
    new.setdefault("metadata", {}).update(stamped, generation=1)
    if request.namespace is not None:
        new["metadata"]["namespace"] = request.namespace
    new["metadata"]["managedFields"] = [_entry(manager, set(applied), info.group_version)]
    return new


def _NAMESPACES(resource: Any) -> Any:
    return type(resource)("", "v1", "namespaces")


def _merged(
    live: dict[str, Any], applied: dict[Path, Any], manager: str, *, force: bool
) -> dict[str, Any] | None:
    """The live object with ``applied`` merged in; None: nothing would change."""
    owners = _owners(live)
    mine = owners.pop(manager, set())
    conflicts = sorted(
        (other, path)
        for other, paths in owners.items()
        for path in paths & set(applied)
        if _get(live, path) != applied[path]
    )
    if conflicts and not force:
        said = "; ".join(f'conflict with "{m}": .{".".join(p)}' for m, p in conflicts[:10])
        raise ApiError(
            409,
            "Conflict",
            f"Apply failed with {len(conflicts)} conflict(s): {said}",
            {"causes": [{"reason": "FieldManagerConflict", "field": ".".join(p)}
                        for _, p in conflicts[:10]]},
        )  # fmt: skip
    for other in owners:
        owners[other] -= set(applied)  # forced, or the same value: the field is ours now
    others = set().union(*owners.values()) if owners else set()
    new = copy.deepcopy(live)
    for path in mine - set(applied) - others:
        _unset(new, path)
    for path, value in applied.items():
        _set(new, path, value)
    owners = {m: p for m, p in owners.items() if p}
    changed = (
        new != live
        or mine != set(applied)
        or owners != {m: p for m, p in _owners(live).items() if m != manager}
    )
    if not changed:
        return None
    owners[manager] = set(applied)
    version = str(live.get("apiVersion", ""))
    new["metadata"]["managedFields"] = [
        _entry(m, paths, version) for m, paths in sorted(owners.items())
    ]
    return new


def _entry(manager: str, paths: set[Path], api_version: str) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fieldsType": "FieldsV1",
        "fieldsV1": _encode(paths),
    }
