"""``fleetctl apply -f`` and ``fleetctl delete``: Deployment resources in and out.

Why it exists: a user describes a Deployment in a YAML file (``deploy/examples/``); this
module reads it, says precisely what is wrong with it (file, document, field), and makes
the API hold exactly that spec: created when new, otherwise a JSON merge patch computed
against what the server has, so a key removed from the file is removed on the server too
(a plain merge patch would keep it).

What it must never do: touch ``status`` (the operator owns it) or any kind but fleet's
``Deployment``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fleet.contracts import API_VERSION, KIND_DEPLOYMENT, DeploymentName
from fleet.errors import ContractError
from fleet.runtime.kube.client import DEPLOYMENTS, KubeClient, KubeNotFound


class ManifestError(Exception):
    """A manifest file is unreadable or not a fleet Deployment (the message says where)."""


def load(path: str, *, namespace: str | None) -> list[dict[str, Any]]:
    """The Deployments in ``path`` (``-``: stdin), each with its namespace filled in."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from exc
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from exc
    if not documents:
        raise ManifestError(f"{path}: no document in the file")
    return [_check(doc, where=f"{path}: document {i}", namespace=namespace)
            for i, doc in enumerate(documents, 1)]  # fmt: skip


def _check(doc: object, *, where: str, namespace: str | None) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ManifestError(f"{where}: expected a mapping, got {type(doc).__name__}")
    if doc.get("apiVersion") != API_VERSION:
        raise ManifestError(
            f"{where}: apiVersion must be {API_VERSION!r}, got {doc.get('apiVersion')!r}"
        )
    if doc.get("kind") != KIND_DEPLOYMENT:
        raise ManifestError(f"{where}: kind must be {KIND_DEPLOYMENT!r}, got {doc.get('kind')!r}")
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or "name" not in meta:
        raise ManifestError(f"{where}: metadata.name is missing")
    try:
        DeploymentName.try_new(meta["name"])
    except ContractError as exc:
        raise ManifestError(f"{where}: metadata.name: {exc}") from exc
    if not isinstance(doc.get("spec"), dict):
        raise ManifestError(f"{where}: spec must be a mapping with selector and score")
    file_ns = meta.get("namespace")
    if namespace and file_ns and namespace != file_ns:
        raise ManifestError(
            f"{where}: metadata.namespace is {file_ns!r} but --namespace is {namespace!r}"
        )
    body = {k: v for k, v in doc.items() if k != "status"}
    body["metadata"] = {**meta, "namespace": file_ns or namespace or "default"}
    return body


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns ``old`` into ``new`` (``None`` removes a key)."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif key not in old or before != value:
            patch[key] = value
    return patch


def apply(client: KubeClient, body: Mapping[str, Any]) -> str:
    """Create or update one Deployment; return ``created``, ``configured`` or ``unchanged``."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        current = client.get(DEPLOYMENTS, namespace=namespace, name=name)
    except KubeNotFound:
        client.create(DEPLOYMENTS, body=body)
        return "created"
    cur_meta = current.get("metadata") or {}
    patch: dict[str, Any] = {}
    spec = merge_patch(current.get("spec") or {}, body["spec"])
    if spec:
        patch["spec"] = spec
    for field in ("labels", "annotations"):  # added or changed, never removed: others' too
        have = cur_meta.get(field) or {}
        sub = {k: v for k, v in (meta.get(field) or {}).items() if have.get(k) != v}
        if sub:
            patch.setdefault("metadata", {})[field] = sub
    if not patch:
        return "unchanged"
    client.patch(DEPLOYMENTS, namespace=namespace, name=name, body=patch)
    return "configured"


def delete(client: KubeClient, *, namespace: str, name: str) -> None:
    """Delete one Deployment; :class:`KubeNotFound` when there is none."""
    client.get(DEPLOYMENTS, namespace=namespace, name=name)
    client.delete(DEPLOYMENTS, namespace=namespace, name=name)
