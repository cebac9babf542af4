"""A score whose strings may hold per-device templates, and its canonical bytes.

Why it exists: a Deployment's ``spec.score`` (and a ``DeploymentRevision``'s) may write
``{{ device.labels.site }}`` in a container's ``image``, ``command`` arguments, ``env``
values or an inline file's ``content`` (docs/workloads.md, "Per-device values"); the
operator renders them per device.
The score *as written* is the revision's identity, so it needs one canonical encoding
that both the operator's spec reader and its revision reader agree on. This module finds
the templated strings (:func:`templated_fields`) and encodes such a score
(:func:`encode_template_score`): validated as a score with each templated image replaced
by a placeholder, then encoded as usual with the template text put back.

Only a ``podman`` score's containers are walked: a ``kvm`` or ``kubernetes`` score is
written verbatim, ``{{`` and all (cloud-init user data and manifests carry templates of
their own, for cloud-init's Jinja or a cluster's tools, that are not the operator's).

A score without any template is encoded by :func:`~fleet.contracts.encode_score` itself:
its bytes, and its score hash, are exactly those of a release without templates.

What it must never do: evaluate a template (that is the operator's sandbox, in
``fleet.actors.operator.templating``), do I/O, or encode a score without templates in
any other way than :func:`~fleet.contracts.encode_score`.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from fleet.errors import ContractError

from .codec import convert_score, encode_score
from .limits import MAX_DESIRED_BYTES

TEMPLATE_MARKERS: Final = ("{{", "{%", "{#")
"""A string holding one of these is a template (``{{ '{{' }}`` writes a literal one)."""
_BYTE_MARKERS: Final = tuple(m.encode() for m in TEMPLATE_MARKERS)
MAX_TEMPLATED_FIELDS: Final = 128
"""Templated strings in one score: each is compiled when the spec is read."""
_PLACEHOLDER_IMAGE: Final = "template.invalid/placeholder"

FieldPath = tuple[int, str, str | int | None]
"""Where a templated string is: ``(container index, "image" | "command" | "env" | "files",
key)`` (the argument's index, the variable's name, the file's index, None for the image)."""


def field_name(path: FieldPath) -> str:
    """``containers[0].env.SITE``, ``containers[1].command[2]``, ``containers[0].image``."""
    index, kind, key = path
    if kind == "image":
        return f"containers[{index}].image"
    if kind == "command":
        return f"containers[{index}].command[{key}]"
    if kind == "files":
        return f"containers[{index}].files[{key}].content"
    return f"containers[{index}].env.{key}"


def is_template(value: object) -> bool:
    return isinstance(value, str) and any(m in value for m in TEMPLATE_MARKERS)


def may_hold_templates(desired: bytes) -> bool:
    """A cheap test on encoded bytes: False means it holds no template for sure."""
    return any(m in desired for m in _BYTE_MARKERS)


def templated_fields(score: object) -> list[tuple[FieldPath, str]]:
    """The templated strings of a parsed score (a dict), in a stable order. Shapes that
    are not a score's are skipped: :func:`~fleet.contracts.convert_score` names them."""
    out: list[tuple[FieldPath, str]] = []
    if not isinstance(score, dict) or score.get("type", "podman") != "podman":
        return out  # kvm, kubernetes: written verbatim, markers and all (docs/workloads.md)
    containers = score.get("containers")
    if not isinstance(containers, list):
        return out
    for index, container in enumerate(containers):
        if not isinstance(container, dict):
            continue
        image = container.get("image")
        if isinstance(image, str) and is_template(image):
            out.append(((index, "image", None), image))
        command = container.get("command")
        if isinstance(command, list):
            out += [((index, "command", i), a) for i, a in enumerate(command) if is_template(a)]
        env = container.get("env")
        if isinstance(env, dict):
            out += [((index, "env", k), v) for k, v in env.items() if is_template(v)]
        files = container.get("files")
        if isinstance(files, list):  # an inline file's content (issue 14, "Files")
            out += [
                ((index, "files", i), f["content"])
                for i, f in enumerate(files)
                if isinstance(f, dict) and is_template(f.get("content"))
            ]
    if len(out) > MAX_TEMPLATED_FIELDS:
        raise ContractError(
            f"{len(out)} templated strings, at most {MAX_TEMPLATED_FIELDS} allowed",
            field=field_name(out[MAX_TEMPLATED_FIELDS][0]),
        )
    return out


def put_field(tree: dict[str, Any], path: FieldPath, value: str) -> None:
    """Set the string at ``path`` in a score's tree (checked by :func:`templated_fields`)."""
    index, kind, key = path
    container = tree["containers"][index]
    if kind == "image":
        container["image"] = value
    elif kind == "files":
        container["files"][key]["content"] = value
    else:
        container[kind][key] = value


def encode_template_score(score: object) -> tuple[bytes, list[tuple[FieldPath, str]]]:
    """The canonical bytes of a parsed score and its templated strings (none: exactly
    :func:`~fleet.contracts.encode_score`'s bytes). :class:`ContractError` if it is not a
    score once its templated images are read as a valid image."""
    fields = templated_fields(score)
    if not fields:
        return encode_score(convert_score(score)), fields
    images = [(path, source) for path, source in fields if path[1] == "image"]
    probe: object = score
    if images:
        probe = msgspec.json.decode(msgspec.json.encode(score))  # a copy to write into
        assert isinstance(probe, dict)  # templated_fields found containers in it
        for path, _source in images:
            put_field(probe, path, _PLACEHOLDER_IMAGE)
    encoded = encode_score(convert_score(probe))
    if images:
        tree = msgspec.json.decode(encoded)
        for path, source in images:
            put_field(tree, path, source)
        encoded = msgspec.json.encode(tree)
        if len(encoded) > MAX_DESIRED_BYTES:
            raise ContractError(
                f"score would be {len(encoded)} bytes encoded, at most {MAX_DESIRED_BYTES} allowed"
            )
    return encoded, fields
