"""The per-device template language of score strings: compiled once, rendered per device.

Why it exists: a score's ``image``, ``command`` arguments and ``env`` values may say
``{{ device.labels.site | default("lab") }}`` (docs/workloads.md, "Per-device values").
A Deployment's spec is written by whoever may write Deployments, and the operator
evaluates it, so the language is Jinja2's expressions in its ``SandboxedEnvironment``
(a maintained library, not a home-made parser) cut down to a short, checked list:

* the only variable is ``device``, and only ``device.id`` and ``device.labels.<key>``
  (or ``device.labels["<key>"]``) may be read;
* the only filters are :data:`FILTERS`; arguments are constants or such expressions;
  ``~`` joins strings; nothing else (no statements, calls, operators, tests, globals);
* a template is at most :data:`MAX_TEMPLATE_CHARS` long, nests at most
  :data:`MAX_NESTING` filters deep, a rendering is at most :data:`MAX_RENDERED_CHARS`
  long (``replace`` checks the length it would make before making it).

Everything outside that list is refused when the template is compiled
(:class:`TemplateRefused`: the spec's ``InvalidSpec``), so nothing unbounded ever runs.
A label a device lacks (``StrictUndefined``) is a :class:`RenderError` for that device.

What it must never do: give a template any object but the ``device`` it is rendered for,
or raise anything but :class:`TemplateRefused` / :class:`RenderError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import jinja2
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment

MAX_TEMPLATE_CHARS: Final = 4096
MAX_RENDERED_CHARS: Final = 8192
MAX_NESTING: Final = 32
"""Filters and ``~`` nested in one expression (Jinja's parser and compiler recurse)."""
VARIABLES: Final = ("device.id", "device.labels.<key>")


class TemplateRefused(ValueError):
    """A template that does not parse, or uses what the language does not have."""


class RenderError(ValueError):
    """A template that cannot be rendered for one device (a label it lacks, too long)."""


class _Device:
    """What a template sees: ``id`` and ``labels``, nothing else (no methods reachable)."""

    __slots__ = ("id", "labels")

    def __init__(self, device_id: str, labels: Mapping[str, str]) -> None:
        self.id = device_id
        self.labels = _Labels(labels)


class _Labels:
    __slots__ = ("values",)

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values


def _text(value: Any) -> str:
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined: raises, naming what is missing
    if not isinstance(value, str | int):  # bool is an int: "True"
        raise RenderError(f"expected a string, got {type(value).__name__}")
    return str(value)


def _bounded(text: str) -> str:
    if len(text) > MAX_RENDERED_CHARS:
        raise RenderError(f"renders {len(text)} characters, at most {MAX_RENDERED_CHARS} allowed")
    return text


def _default(value: Any, default: Any = "", boolean: bool = False) -> Any:
    if isinstance(value, jinja2.Undefined) or (boolean and not value):
        return default
    return value


def _lower(value: Any) -> str:
    return _bounded(_text(value).lower())


def _upper(value: Any) -> str:
    return _bounded(_text(value).upper())  # 'ß' -> 'SS': bounded still


def _trim(value: Any, chars: Any = None) -> str:
    return _text(value).strip(None if chars is None else _text(chars))


def _replace(value: Any, old: Any, new: Any, count: Any = None) -> str:
    text, old_text, new_text = _text(value), _text(old), _text(new)
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        raise RenderError("replace's count must be an integer")
    times = text.count(old_text) if old_text else len(text) + 1
    if count is not None and count >= 0:
        times = min(times, count)
    size = len(text) + times * (len(new_text) - len(old_text))
    if size > MAX_RENDERED_CHARS:  # checked before it is made: replace("", ...) multiplies
        raise RenderError(f"replace would make {size} characters, at most {MAX_RENDERED_CHARS}")
    return text.replace(old_text, new_text, -1 if count is None else count)


FILTERS: Final[dict[str, tuple[Callable[..., Any], int, int]]] = {
    # name: (function, fewest arguments, most arguments), the value not counted
    "default": (_default, 0, 2),
    "lower": (_lower, 0, 0),
    "upper": (_upper, 0, 0),
    "replace": (_replace, 2, 3),
    "trim": (_trim, 0, 1),
}


class _Sandbox(SandboxedEnvironment):
    """Attribute and item lookups on the device are label lookups, whatever the name
    (``device.labels.items`` is the label ``items``, not a method); on anything else
    they find nothing."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        return self._lookup(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        return self._lookup(obj, argument)

    def _lookup(self, obj: Any, name: Any) -> Any:
        if isinstance(obj, _Labels) and isinstance(name, str):
            value = obj.values.get(name)
            if value is not None:
                return value
            return self.undefined(hint=f"device has no label {name!r}", name=name)
        if isinstance(obj, _Device) and name in ("id", "labels"):
            return obj.id if name == "id" else obj.labels
        return self.undefined(hint=f"no attribute {str(name)[:64]!r}", name=str(name))


def _environment() -> _Sandbox:
    env = _Sandbox(undefined=jinja2.StrictUndefined, autoescape=False, cache_size=0)
    env.globals.clear()  # no range, dict, lipsum, cycler, joiner, namespace
    env.tests.clear()
    env.filters.clear()
    env.filters.update({name: spec[0] for name, spec in FILTERS.items()})
    return env


_ENV: Final = _environment()


class Template:
    """One compiled template string."""

    __slots__ = ("_compiled", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._compiled = compile_template(source)

    def render(self, *, device: str, labels: Mapping[str, str]) -> str:
        """Its text for one device; :class:`RenderError` says why not."""
        try:
            return _bounded(self._compiled.render(device=_Device(device, labels)))
        except RenderError:
            raise
        except jinja2.UndefinedError as exc:
            raise RenderError(str(exc) or "a value it needs is undefined") from exc
        except Exception as exc:  # total: the sandbox, a filter's own error, MemoryError
            raise RenderError(f"{type(exc).__name__}: {exc}") from exc


def compile_template(source: str) -> jinja2.Template:
    """Parse and check a template against the language; :class:`TemplateRefused` if not."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateRefused(
            f"template is {len(source)} characters, at most {MAX_TEMPLATE_CHARS} allowed"
        )
    try:
        tree = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateRefused(
            f"template does not parse: {exc.message} (line {exc.lineno})"
        ) from exc
    except RecursionError as exc:
        raise TemplateRefused(f"template nests too deep: at most {MAX_NESTING} levels") from exc
    except Exception as exc:  # the lexer's own limits
        raise TemplateRefused(f"template does not parse: {type(exc).__name__}") from exc
    for statement in tree.body:
        if not isinstance(statement, nodes.Output):
            raise TemplateRefused(
                f"{_what(statement)} is not part of the template language: only "
                "{{ expressions }} with "
                + ", ".join(VARIABLES)
                + " and the filters "
                + ", ".join(FILTERS)
            )
        for node in statement.nodes:
            if not isinstance(node, nodes.TemplateData):
                _check_output(node, 0)
    try:
        return _ENV.from_string(tree)
    except Exception as exc:  # pragma: no cover - a checked tree compiles
        raise TemplateRefused(f"template does not compile: {type(exc).__name__}") from exc


def _what(node: nodes.Node) -> str:
    names = {
        "For": "a {% for %} loop", "If": "an {% if %} block", "Assign": "{% set %}",
        "Macro": "a macro", "Include": "{% include %}", "Extends": "{% extends %}",
        "Import": "{% import %}", "FromImport": "{% from %}", "Block": "a {% block %}",
    }  # fmt: skip
    return names.get(type(node).__name__, f"{type(node).__name__!r}")


def _check_output(node: nodes.Node, depth: int) -> None:
    """An expression whose value is written: a string, not the device or its labels."""
    if depth > MAX_NESTING:
        raise TemplateRefused(f"template nests too deep: at most {MAX_NESTING} levels")
    path = _check(node, depth)
    if path is not None and path in (("device",), ("device", "labels")):
        raise TemplateRefused(
            f"{'.'.join(path)} is not a string: use one of " + ", ".join(VARIABLES)
        )


def _check(node: nodes.Node, depth: int) -> tuple[str, ...] | None:
    """Refuse what the language does not have; the variable path when ``node`` is one."""
    if isinstance(node, nodes.Const):
        if not isinstance(node.value, str | int):
            raise TemplateRefused(f"constant {node.value!r} is not a string or an integer")
        return None
    if isinstance(node, nodes.Concat):
        for part in node.nodes:
            _check_output(part, depth + 1)
        return None
    if isinstance(node, nodes.Filter):
        _check_filter(node, depth)
        return None
    if isinstance(node, nodes.Name | nodes.Getattr | nodes.Getitem):
        return _variable(node)
    raise TemplateRefused(
        f"{_expression(node)} is not part of the template language: only "
        + ", ".join(VARIABLES) + ", constants, '~' and the filters " + ", ".join(FILTERS)
    )  # fmt: skip


def _expression(node: nodes.Node) -> str:
    if isinstance(node, nodes.BinExpr):
        return f"the operator {node.operator!r}"
    if isinstance(node, nodes.Call):
        return "a call"
    if isinstance(node, nodes.Test):
        return f"the test {node.name!r}"
    if isinstance(node, nodes.Const):
        return f"the constant {str(node.value)[:32]!r}"
    return type(node).__name__


def _check_filter(node: nodes.Filter, depth: int) -> None:
    spec = FILTERS.get(node.name)
    if spec is None:
        raise TemplateRefused(
            f"unknown filter {node.name!r}: the filters are " + ", ".join(FILTERS)
        )
    if node.node is None or node.kwargs or node.dyn_args or node.dyn_kwargs:
        raise TemplateRefused(f"filter {node.name!r}: only positional arguments")
    _, fewest, most = spec
    if not fewest <= len(node.args) <= most:
        raise TemplateRefused(
            f"filter {node.name!r} takes {fewest}..{most} arguments, got {len(node.args)}"
        )
    _check_output(node.node, depth + 1)
    for arg in node.args:
        _check_output(arg, depth + 1)


def _variable(node: nodes.Node) -> tuple[str, ...]:
    parts: list[str] = []
    while not isinstance(node, nodes.Name):
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem):
            arg = node.arg
            if not (isinstance(arg, nodes.Const) and isinstance(arg.value, str)):
                raise TemplateRefused('an index must be a constant string: device.labels["key"]')
            parts.append(arg.value)
            node = node.node
        else:
            raise TemplateRefused(
                f"{_expression(node)} has no attributes here: only " + ", ".join(VARIABLES)
            )
    parts.append(node.name)
    path = tuple(reversed(parts))
    if path[0] != "device":
        raise TemplateRefused(
            f"unknown variable {path[0]!r}: the variables are " + ", ".join(VARIABLES)
        )
    if path in (("device",), ("device", "id"), ("device", "labels")) or (
        len(path) == 3 and path[1] == "labels"
    ):
        return path
    raise TemplateRefused(
        f"unknown variable {'.'.join(path)!r}: the variables are " + ", ".join(VARIABLES)
    )
