"""What the API emulator refuses in a write: unknown fields, bad patches; :class:`ApiError`.

It exists because ``kubectl apply`` sends ``fieldValidation=Strict`` once the server's
OpenAPI says it validates fields, trusting the server to refuse a misspelt field; an
emulator that took it silently would let a manifest pass here and fail on a real cluster.
Only unknown fields are checked (the API server's "strict decoding error"), against a CRD's
``openAPIV3Schema``: ``properties``, ``additionalProperties``, ``items`` and
``x-kubernetes-preserve-unknown-fields``; ``metadata`` is left alone, as are types, formats
and bounds (not emulated).

A patch is refused as the API server refuses it too: a strategic merge patch on a custom
resource (415), a JSON patch that is not an array, a merge patch that is not an object.

It must never do I/O or import kmock, and never recurse without a bound: a body nested
deeper than :data:`MAX_DEPTH` is refused rather than walked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

MAX_DEPTH: Final = 100
MAX_REPORTED: Final = 10
MERGE_TYPES: Final = ("application/merge-patch+json", "application/json", "")
STRATEGIC: Final = "application/strategic-merge-patch+json"


class ApiError(Exception):
    """A request refused as the API server refuses it: the ``Status`` code, reason, message."""

    def __init__(
        self, status: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.details = status, reason, message, details


def unknown_fields(body: Any, schema: Mapping[str, Any]) -> list[str]:
    """The paths of the fields in ``body`` that ``schema`` does not know (at most 10)."""
    found: list[str] = []
    stack: list[tuple[Any, Mapping[str, Any], str, int]] = [(body, schema, "", 0)]
    while stack and len(found) < MAX_REPORTED:
        value, node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            found.append(f"{path} (nested deeper than {MAX_DEPTH})")
            continue
        if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
            continue
        if isinstance(value, list) and isinstance(node.get("items"), Mapping):
            stack.extend((item, node["items"], f"{path}[{i}]", depth + 1)
                         for i, item in enumerate(value))  # fmt: skip
        if not isinstance(value, Mapping):
            continue
        properties = node.get("properties")
        extra = node.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if not path and key in ("apiVersion", "kind", "metadata"):
                continue  # every object has them; metadata is the API server's own
            if isinstance(properties, Mapping) and key in properties:
                stack.append((item, properties[key], where, depth + 1))
            elif isinstance(extra, Mapping):
                stack.append((item, extra, where, depth + 1))
            elif extra is True or node.get("x-kubernetes-preserve-unknown-fields"):
                continue
            elif isinstance(properties, Mapping) or extra is False:
                found.append(where)
    return sorted(found)


def check_strict(body: Any, *, kind: str, version: str, schema: Mapping[str, Any]) -> None:
    """``fieldValidation=Strict`` (kubectl's default): an unknown field is a 400."""
    if isinstance(body, Mapping) and (unknown := unknown_fields(body, schema)):
        fields = ", ".join(f'unknown field "{field}"' for field in unknown)
        raise ApiError(
            400,
            "BadRequest",
            f'{kind} in version "{version}" cannot be handled as a {kind}: '
            f"strict decoding error: {fields}",
        )


def check_patch(content_type: str, body: Any, *, custom: bool) -> None:
    """A patch's media type against its body (``custom``: a custom resource's patch)."""
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    if kind == "application/json-patch+json":
        if not isinstance(body, list):
            raise ApiError(400, "BadRequest", "a JSON patch must be a JSON array")
        return
    if kind == STRATEGIC and custom:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types "
            "include: application/json-patch+json, application/merge-patch+json, "
            "application/apply-patch+yaml",
        )
    if kind not in (*MERGE_TYPES, STRATEGIC):
        raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {kind!r}")
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
