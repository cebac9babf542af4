"""The API emulator's HTTP edge: requests parsed, errors and watches written as the API server does.

It exists so that what crosses the wire is in one place: a request becomes kmock's
``Request`` (plus the core ``/api/v1/namespaces`` paths kmock cannot parse, and a 400 for a
body that is not JSON); any fault becomes a ``Status`` body with its code, never a traceback;
a watch is JSON lines with ``Content-Type: application/json``; discovery and OpenAPI are
answered from the served resources before kmock sees the request.

It must never keep state: the emulator (``_kube_api``) owns the objects and the buses.
"""

from __future__ import annotations

import asyncio
import json
import re
import traceback
from collections.abc import AsyncIterator, Iterable
from typing import Any, Final

import aiohttp.web
from kmock._internal import enums, k8s, parsing, references, rendering

from . import _kube_apply as apply
from . import _kube_discovery as discovery
from . import _kube_openapi as openapi
from ._kube_validation import ApiError

_NAMESPACES: Final = re.compile(r"/api/v1/namespaces(?:/([^/]+))?(?:/(status|finalize))?/?")


def gone(since: str, compacted: int) -> dict[str, Any]:
    """The ``Status`` a watch from a compacted resource version ends with (410 Expired)."""
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "reason": "Expired",
        "code": 410,
        "message": f"too old resource version: {since} ({compacted})",
    }


def status_body(exc: Exception) -> tuple[dict[str, Any], int]:
    """The ``Status`` body and HTTP code for any fault (500 for our own bugs)."""
    if isinstance(exc, (ApiError, k8s.KubernetesError)):
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": exc.message or repr(exc),
            "reason": exc.reason or type(exc).__name__,
            "code": exc.status,
        }
        if exc.details:
            body["details"] = exc.details
        return body, int(exc.status)
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": repr(exc),
        "reason": "InternalError",
        "code": 500,
        "details": {"causes": [{"message": traceback.format_exc(limit=5)}]},
    }, 500


async def error_response(
    exc: Exception, response: aiohttp.web.StreamResponse | None
) -> aiohttp.web.StreamResponse:
    """``exc`` as the answer; on a stream already started, as its last (ERROR) event."""
    body, code = status_body(exc)
    if response is None or not response.prepared:
        return aiohttp.web.json_response(body, status=code)
    await response.write(json.dumps({"type": "ERROR", "object": body}).encode() + b"\n")
    await response.write_eof()
    return response


async def parse(raw: aiohttp.web.BaseRequest) -> rendering.Request:
    """kmock's request parsing, plus the core ``namespaces`` paths and a 400 on bad JSON."""
    body = await raw.read()
    method = enums.method(raw.method)
    data = None
    if body and raw.method in ("POST", "PATCH", "PUT"):
        try:
            is_apply = raw.method == "PATCH" and apply.is_apply(raw.headers.get("Content-Type", ""))
            data = apply.load_body(body) if is_apply else json.loads(body)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"the body is not JSON: {exc}") from exc
    match = _NAMESPACES.fullmatch(raw.path)
    if match is not None:
        k8s_path = parsing.ParsedPath(
            group="",
            version="v1",
            plural="namespaces",
            name=match.group(1),
            subresource=match.group(2),
        )
    else:
        k8s_path = parsing.parse_path(raw.path)
    resource = None
    if k8s_path.group is not None:
        resource = references.resource(
            group=k8s_path.group, version=k8s_path.version, plural=k8s_path.plural
        )
    return rendering.Request(
        raw_request=raw,
        url=raw.url,
        method=raw.method,
        params=dict(raw.query),
        headers=dict(raw.headers),
        cookies=dict(raw.cookies),
        data=data,
        body=body,
        text=body.decode("utf-8", "replace"),
        action=parsing.guess_k8s(k8s_path, method, dict(raw.query)),
        resource=resource,
        namespace=k8s_path.namespace,
        name=k8s_path.name,
        subresource=k8s_path.subresource,
    )


async def stream(
    raw: aiohttp.web.BaseRequest, events: AsyncIterator[Any]
) -> aiohttp.web.StreamResponse:
    """A watch as the API server streams it: JSON lines, ``Content-Type: application/json``.

    The generator's first item is a marker: anything it raises before it (a bad
    selector) is still an ordinary error answer, not a broken stream.
    """
    await anext(events)
    response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
    try:
        await response.prepare(raw)
        async for event in events:
            await response.write(json.dumps(event).encode() + b"\n")
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        pass  # the client went away: its watch ends here (the finally below unmarks it)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    return response


def discovery_response(
    raw: aiohttp.web.BaseRequest, served: Iterable[discovery.ServedResource]
) -> aiohttp.web.StreamResponse | None:
    """``/api``, ``/apis``, a group, a group version, ``/openapi/v3...``; None: not one."""
    path = raw.path.rstrip("/")
    parts = path.split("/", 4)[1:]
    if not (
        (parts[0] == "apis" and 1 <= len(parts) <= 3)
        or (parts[0] == "api" and len(parts) <= 2)
        or path.startswith("/openapi/v3")
    ):
        return None  # an object's path: the common case, answered by the emulator
    served = list(served)
    if path in ("/api", "/apis") and discovery.wants_aggregated(raw.headers.get("Accept", "")):
        body = json.dumps(discovery.aggregated(served, core=path == "/api")).encode()
        return aiohttp.web.Response(
            body=body, content_type=None, headers={"Content-Type": discovery.AGGREGATED_TYPE}
        )
    doc = _document(path, parts, served)
    if doc is None:
        raise ApiError(404, "NotFound", f"the server could not find {path}")
    return aiohttp.web.json_response(doc)


def _document(
    path: str, parts: list[str], served: list[discovery.ServedResource]
) -> dict[str, Any] | None:
    """The legacy discovery or OpenAPI document at ``path``; None: there is none (404)."""
    if path == "/api":
        return discovery.api_versions()
    if path == "/apis":
        return discovery.api_group_list(served)
    if path.startswith("/openapi/v3"):
        gv_path = path.removeprefix("/openapi/v3").lstrip("/")
        return openapi.group_version_doc(served, gv_path) if gv_path else openapi.root_doc(served)
    if parts[0] == "api":
        return discovery.resource_list(served, parts[1])
    if len(parts) == 2:
        versions = discovery.group_versions(served, parts[1])
        return discovery.api_group(parts[1], versions) if versions else None
    return discovery.resource_list(served, f"{parts[1]}/{parts[2]}")
