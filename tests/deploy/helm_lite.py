"""Render the harmony-fleet-operator chart without helm: the few template actions it uses.

Why it exists: there is no helm binary here, yet the chart must render to the same objects
as the kustomize base. The chart's templates are kept to a tiny subset of Go templates,
which this module implements: ``{{ .Release.Name }}``, ``{{ .Release.Namespace }}``,
``{{ .Values.a.b }}``, the functions ``quote``, ``toYaml``, ``nindent N``, ``indent N``
in a pipeline, ``{{ range .Values.x }} ... {{ . }} ... {{ end }}``, and the ``{{-``/``-}}``
whitespace trimming. Any other action is an error naming the template and the action,
so a template cannot silently grow past what is tested. Never used by ``fleet`` itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)


class TemplateError(Exception):
    """A template uses an action the chart's simple subset does not allow."""


def _lookup(path: str, scope: Mapping[str, Any], dot: Any, *, where: str) -> Any:
    if path == ".":
        return dot
    value: Any = scope
    for part in path.lstrip(".").split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise TemplateError(f"{where}: {path!r} is not defined")
        value = value[part]
    return value


def _to_yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _pipeline(expr: str, scope: Mapping[str, Any], dot: Any, *, where: str) -> str:
    stages = [s.strip() for s in expr.split("|")]
    first = stages[0].split()
    if first[0] == "toYaml" and len(first) == 2:
        text = _to_yaml(_lookup(first[1], scope, dot, where=where))
    elif len(first) == 1 and first[0].startswith("."):
        text = _scalar(_lookup(first[0], scope, dot, where=where))
    else:
        raise TemplateError(f"{where}: unsupported expression {stages[0]!r}")
    for stage in stages[1:]:
        fn, *args = stage.split()
        if fn == "quote" and not args:
            text = json.dumps(text)
        elif fn in ("nindent", "indent") and len(args) == 1 and args[0].isdigit():
            pad = " " * int(args[0])
            text = "\n".join(pad + line if line else line for line in text.split("\n"))
            text = ("\n" if fn == "nindent" else "") + text
        else:
            raise TemplateError(f"{where}: unsupported function {stage!r}")
    return text


def _tokens(text: str) -> list[tuple[str, str]]:
    """Split into ("text", s) and ("action", s), applying the trim markers."""
    out: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for match in ACTION.finditer(text):
        chunk = text[pos : match.start()]
        if trim_next:
            chunk = chunk.lstrip()
        if match.group(1):
            chunk = chunk.rstrip()
        out.append(("text", chunk))
        out.append(("action", match.group(2)))
        trim_next = bool(match.group(3))
        pos = match.end()
    tail = text[pos:]
    out.append(("text", tail.lstrip() if trim_next else tail))
    return out


def _render(
    tokens: list[tuple[str, str]], scope: Mapping[str, Any], dot: Any, *, where: str
) -> tuple[str, int]:
    """Render until an unmatched ``end``; returns the text and the tokens consumed."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "text":
            out.append(value)
        elif value == "end":
            return "".join(out), i + 1
        elif value.startswith("range "):
            items = _lookup(value.removeprefix("range ").strip(), scope, dot, where=where)
            if not isinstance(items, list):
                raise TemplateError(f"{where}: range over a non-list {value!r}")
            body = tokens[i + 1 :]
            consumed = _render(body, scope, None, where=where)[1] if not items else 0
            for item in items:
                text, consumed = _render(body, scope, item, where=where)
                out.append(text)
            i += consumed
        elif value.startswith("#") or value.startswith("/*"):
            raise TemplateError(f"{where}: comments in actions are not supported: {value!r}")
        else:
            out.append(_pipeline(value, scope, dot, where=where))
        i += 1
    return "".join(out), i


def render_template(text: str, scope: Mapping[str, Any], *, where: str) -> str:
    rendered, consumed = _render(_tokens(text), scope, None, where=where)
    if consumed != len(_tokens(text)):
        raise TemplateError(f"{where}: an `end` without a `range`")
    return rendered


def render_chart(
    chart: Path,
    *,
    release: str,
    namespace: str,
    values: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The chart's objects (CRDs from ``crds/`` first, then every template), parsed."""
    base = yaml.safe_load((chart / "values.yaml").read_text())
    merged = _merge(base, dict(values or {}))
    scope = {"Release": {"Name": release, "Namespace": namespace}, "Values": merged}
    objects: list[dict[str, Any]] = []
    for path in sorted((chart / "crds").glob("*.yaml")):
        objects.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for path in sorted((chart / "templates").glob("*.yaml")):
        text = render_template(path.read_text(), scope, where=str(path))
        objects.extend(d for d in yaml.safe_load_all(text) if d)
    return objects


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
