"""Server-side printing for the API emulator: ``meta.k8s.io/v1`` Tables, as the API server makes.

It exists because ``kubectl get`` asks for a Table (``Accept: application/json;as=Table;...``)
and prints what the server puts in it: for a custom resource, Name plus the CRD's
``additionalPrinterColumns`` (JSONPath over each object, typed cells, dates shown as ages),
or Name and Age when the CRD declares none; for built-in kinds the columns the API server's
own printers use (namespaces, events), and Name / Created At for the rest.

It must never do I/O or import kmock: pure functions from objects to Table dicts. Only the
JSONPath that printer columns use is understood (``.a.b``, ``[N]``, ``[*]``,
``[?(@.k=="v")]``); anything else yields no value (an empty cell), never an exception.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

Column = dict[str, Any]  # a TableColumnDefinition
_STEP: Final = re.compile(
    r"""\.(?P<key>[A-Za-z0-9_-]+)|\[(?P<index>\d+|\*)\]"""
    r"""|\[\?\(@\.(?P<fkey>[A-Za-z0-9_.-]+)\s*==\s*(?P<q>["'])(?P<fval>.*?)(?P=q)\)\]"""
)
NAME_COLUMN: Final[Column] = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "priority": 0,
    "description": "Name must be unique within a namespace.",
}
AGE_COLUMN: Final[dict[str, Any]] = {
    "name": "Age",
    "type": "date",
    "jsonPath": ".metadata.creationTimestamp",
    "description": "CreationTimestamp is a timestamp representing the server time when this "
    "object was created.",
}


Step = tuple[
    str, str, str
]  # ("key", name, "") | ("index", "3" or "*", "") | ("filter", key, value)


@functools.lru_cache(maxsize=256)
def _steps(path: str) -> tuple[Step, ...] | None:
    """``path`` cut into steps once (a Table evaluates each column's path per object)."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    steps: list[Step] = []
    pos = 0
    while pos < len(path):
        match = _STEP.match(path, pos)
        if match is None:
            return None
        pos = match.end()
        if match.group("key") is not None:
            steps.append(("key", match.group("key"), ""))
        elif match.group("index") is not None:
            steps.append(("index", match.group("index"), ""))
        else:
            steps.append(("filter", match.group("fkey"), match.group("fval")))
    return tuple(steps)


def jsonpath(path: str, obj: Any) -> list[Any]:
    """Every value ``path`` reaches in ``obj`` (in order); [] when it reaches none or is odd."""
    steps = _steps(path)
    if steps is None:
        return []
    values = [obj]
    for kind, arg, expected in steps:
        step: list[Any] = []
        for value in values:
            if kind == "key":
                if isinstance(value, Mapping) and arg in value:
                    step.append(value[arg])
            elif not isinstance(value, list):
                continue
            elif kind == "index":
                step.extend(value if arg == "*" else value[int(arg) : int(arg) + 1])
            else:
                for item in value:
                    found = jsonpath("." + arg, item)
                    if found and _text(found[0]) == expected:
                        step.append(item)
        values = step
    return values


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def human_age(timestamp: Any, *, now: datetime.datetime | None = None) -> str:
    """``5m``, ``2d3h``: the API server's HumanDuration since an RFC 3339 ``timestamp``."""
    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    if then.tzinfo is None:
        then = then.replace(tzinfo=datetime.UTC)
    seconds = int(((now or datetime.datetime.now(tz=datetime.UTC)) - then).total_seconds())
    if seconds < -1:
        return "<invalid>"
    return _duration(max(seconds, 0))


def _duration(seconds: int) -> str:  # noqa: PLR0911  (one branch per unit, as upstream)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m" + (f"{seconds % 60}s" if seconds % 60 else "")
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h" + (f"{minutes % 60}m" if minutes % 60 else "")
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d" + (f"{hours % 24}h" if hours % 24 else "")
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return f"{days // 365}y" + (f"{days % 365}d" if days % 365 else "")
    return f"{days // 365}y"


def _cell(kind: str, values: list[Any]) -> Any:
    """A typed cell as the CRD table convertor makes it (None: kubectl shows ``<none>``)."""
    if not values or values[0] is None:
        return None
    value = values[0]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    cell: Any = None
    if kind == "string":
        cell = _text(value)
    elif kind in ("integer", "number") and number:
        cell = int(value) if kind == "integer" else float(value)
    elif kind == "boolean" and isinstance(value, bool):
        cell = value
    elif kind == "date" and isinstance(value, str):
        cell = human_age(value)
    return cell


def crd_columns(version: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A CRD version's printer columns; Age alone when it declares none (as the API does)."""
    columns = version.get("additionalPrinterColumns") or [AGE_COLUMN]
    return [dict(column) for column in columns if isinstance(column, Mapping)]


def _definitions(columns: list[dict[str, Any]]) -> list[Column]:
    return [NAME_COLUMN] + [
        {
            "name": column.get("name", ""),
            "type": column.get("type", "string"),
            "format": column.get("format", ""),
            "description": column.get("description")
            or f"Custom resource definition column (in JSONPath format): {column.get('jsonPath')}",
            "priority": int(column.get("priority", 0)),
        }
        for column in columns
    ]


def _event_object(obj: Mapping[str, Any]) -> str:
    involved = obj.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


Cells = Callable[[Mapping[str, Any]], list[Any]]


def _col(name: str, kind: str = "string", priority: int = 0) -> Column:
    return {"name": name, "type": kind, "format": "", "description": name, "priority": priority}


def _meta(obj: Mapping[str, Any], key: str) -> Any:
    return (obj.get("metadata") or {}).get(key)


def _namespace_cells(obj: Mapping[str, Any]) -> list[Any]:
    phase = (obj.get("status") or {}).get("phase", "Active")
    return [_meta(obj, "name"), phase, human_age(_meta(obj, "creationTimestamp"))]


def _event_cells(obj: Mapping[str, Any]) -> list[Any]:
    created = _meta(obj, "creationTimestamp")
    source = (obj.get("source") or {}).get("component", "") or obj.get("reportingComponent", "")
    return [
        human_age(obj.get("lastTimestamp") or obj.get("eventTime") or created),
        obj.get("type", ""),
        obj.get("reason", ""),
        _event_object(obj),
        (obj.get("involvedObject") or {}).get("fieldPath", ""),
        source,
        obj.get("message", ""),
        human_age(obj.get("firstTimestamp") or created),
        int(obj.get("count") or 1),
        _meta(obj, "name"),
    ]


def _default_cells(obj: Mapping[str, Any]) -> list[Any]:
    return [_meta(obj, "name"), _meta(obj, "creationTimestamp")]


_EVENT_COLUMNS: Final = [
    _col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"),
    _col("Subobject", priority=1), _col("Source", priority=1), _col("Message"),
    _col("First Seen", priority=1), _col("Count", "integer", 1), {**NAME_COLUMN, "priority": 1},
]  # fmt: skip


def _builtin(plural: str) -> tuple[list[Column], Cells]:
    """The columns of the API server's own printers, and the function making a row's cells."""
    if plural == "namespaces":
        return [NAME_COLUMN, _col("Status"), _col("Age")], _namespace_cells
    if plural == "events":
        return _EVENT_COLUMNS, _event_cells
    return [NAME_COLUMN, _col("Created At", "date")], _default_cells


def to_table(
    objects: Iterable[Mapping[str, Any]],
    *,
    plural: str,
    columns: list[dict[str, Any]] | None,
    resource_version: str,
    include_object: str | None,
    no_headers: bool = False,
) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` Table of ``objects``; ``columns`` None: a built-in kind's printer.

    ``include_object`` is the request's ``includeObject``: ``Object`` (the whole object),
    ``None`` (nothing), else ``Metadata`` (a PartialObjectMetadata: kubectl reads the
    namespace and labels from it).
    """
    if columns is None:
        definitions, cells = _builtin(plural)
    else:
        definitions = _definitions(columns)
        paths = [(str(c.get("type", "string")), str(c.get("jsonPath", ""))) for c in columns]

        def cells(obj: Mapping[str, Any]) -> list[Any]:
            name = (obj.get("metadata") or {}).get("name")
            return [name] + [_cell(kind, jsonpath(path, obj)) for kind, path in paths]

    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": cells(obj)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata") or {},
            }
        rows.append(row)
    table: dict[str, Any] = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [] if no_headers else definitions,
        "rows": rows,
    }
    return table


def wants_table(accept: str) -> bool:
    """True when the client asks for a Table first (kubectl get); JSON clients never do."""
    first = accept.split(",", 1)[0].replace(" ", "")
    return "as=Table" in first and "g=meta.k8s.io" in first
