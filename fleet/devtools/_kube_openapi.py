"""The OpenAPI v3 documents the API emulator publishes, as far as ``kubectl apply`` reads them.

It exists because ``kubectl apply`` (``--validate=strict``, its default) first downloads
``/openapi/v3`` to learn whether the server validates fields itself (the ``fieldValidation``
parameter of each resource's PATCH), and refuses to apply anything when there is no OpenAPI
at all. Each served group version gets a document with, per resource, its item path (GET,
PATCH with ``fieldValidation``, DELETE; the operation tagged with its kind) and its schema
(a CRD's ``openAPIV3Schema``), which is also what ``kubectl explain`` reads.

It must never do I/O or import kmock, and never advertise ``dryRun``: the emulator does
not honour it, and a client told it is supported would write for real.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from ._kube_discovery import ServedResource


def _gv_path(res: ServedResource) -> str:
    return f"apis/{res.group}/{res.version}" if res.group else f"api/{res.version}"


def _schema_name(res: ServedResource) -> str:
    reversed_group = ".".join(reversed(res.group.split("."))) if res.group else "io.k8s.api.core"
    return f"{reversed_group}.{res.version}.{res.kind}"


def group_version_doc(served: Iterable[ServedResource], gv_path: str) -> dict[str, Any] | None:
    """The document of ``/openapi/v3/<gv_path>``; None when nothing is served there."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for res in served:
        if _gv_path(res) != gv_path:
            continue
        gvk = {"group": res.group, "version": res.version, "kind": res.kind}
        scope = "/namespaces/{namespace}" if res.namespaced else ""
        ref = {"$ref": f"#/components/schemas/{_schema_name(res)}"}
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        operation = {"x-kubernetes-group-version-kind": gvk, "responses": ok}
        patch_params = [  # on the operation: where kubectl looks for them
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
        ]
        paths[f"/{gv_path}{scope}/{res.plural}/{{name}}"] = {
            "get": {**operation, "operationId": f"read{res.kind}"},
            "patch": {**operation, "operationId": f"patch{res.kind}", "parameters": patch_params},
            "delete": {**operation, "operationId": f"delete{res.kind}"},
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
        }
        schema = dict(
            res.schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        )
        schema["x-kubernetes-group-version-kind"] = [gvk]
        schemas[_schema_name(res)] = schema
    if not paths:
        return None
    return {
        "openapi": "3.0.0",
        "info": {"title": "fleet API emulator", "version": gv_path},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def root_doc(served: Iterable[ServedResource]) -> dict[str, Any]:
    """``/openapi/v3``: where each group version's document is (its hash busts caches)."""
    served = list(served)
    paths: dict[str, Any] = {}
    for gv_path in sorted({_gv_path(res) for res in served}):
        doc = group_version_doc(served, gv_path)
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
        paths[gv_path] = {"serverRelativeURL": f"/openapi/v3/{gv_path}?hash={digest}"}
    return {"paths": paths}
