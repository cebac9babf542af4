"""Events tests: read the Events the emulator stores, as ``kubectl describe`` would.

The emulator stores core/v1 Events like any resource (create, get, list, merge patch)
but ignores field selectors, so :func:`events_for` filters what it lists by the involved
object here, as the API server would with ``involvedObject.name=...``.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes

from tests.fixtures.kube import KubeCluster


def all_events(kube: KubeCluster) -> list[dict[str, Any]]:
    core = kubernetes.client.CoreV1Api(kube.api_client)
    resp: Any = core.list_event_for_all_namespaces(_preload_content=False)  # raw: urllib3's
    items: list[dict[str, Any]] = json.loads(resp.data)["items"]
    return items


def events_for(
    kube: KubeCluster, kind: str, name: str, reason: str | None = None
) -> list[dict[str, Any]]:
    """The Events about ``kind``/``name`` (of ``reason``), oldest first."""
    found = [
        e
        for e in all_events(kube)
        if e["involvedObject"].get("kind") == kind
        and e["involvedObject"].get("name") == name
        and (reason is None or e.get("reason") == reason)
    ]
    return sorted(found, key=lambda e: e["metadata"]["name"])


def reasons(kube: KubeCluster, kind: str, name: str) -> list[str]:
    return [e["reason"] for e in events_for(kube, kind, name)]
