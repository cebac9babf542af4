"""API discovery for the emulator: what ``kubectl`` reads to map ``fleetdep`` to a resource.

It exists because kmock's discovery lists each subresource as a resource of its own (with
the parent's short names), so every short name "could also match" ``.../status``. A real API
server lists a subresource only as ``plural/status`` (no short names, no categories, verbs
get/patch/update), and answers the aggregated discovery (``apidiscovery.k8s.io/v2``) that
kubectl asks for first, so it needs no request per group version.

It must never do I/O or import kmock: pure functions from a catalogue of
:class:`ServedResource` to discovery documents.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

AGGREGATED_TYPE: Final = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
_SUB_VERBS: Final = ["get", "patch", "update"]
_VERBS: Final = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True, kw_only=True)
class ServedResource:
    """One resource the emulator serves, with what discovery says of it."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = tuple(_VERBS)
    columns: list[dict[str, Any]] | None = field(default=None, compare=False)  # None: built-in
    schema: dict[str, Any] | None = field(default=None, compare=False)  # a CRD's openAPIV3Schema

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def _groups(served: Iterable[ServedResource]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for res in served:
        if res.group and res.version not in groups.setdefault(res.group, []):
            groups[res.group].append(res.version)
    return groups


def _gv(group: str, version: str) -> dict[str, str]:
    return {"groupVersion": f"{group}/{version}", "version": version}


def api_versions() -> dict[str, Any]:
    """``GET /api`` (legacy)."""
    return {
        "kind": "APIVersions",
        "apiVersion": "v1",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    }


def api_group(group: str, versions: list[str]) -> dict[str, Any]:
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [_gv(group, v) for v in versions],
        "preferredVersion": _gv(group, versions[0]),
    }


def api_group_list(served: Iterable[ServedResource]) -> dict[str, Any]:
    """``GET /apis`` (legacy)."""
    groups = [api_group(g, vs) for g, vs in sorted(_groups(served).items())]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group_versions(served: Iterable[ServedResource], group: str) -> list[str]:
    return _groups(served).get(group, [])


def resource_list(served: Iterable[ServedResource], group_version: str) -> dict[str, Any] | None:
    """``GET /api/v1`` or ``/apis/GROUP/VERSION`` (legacy); None when nothing is served there."""
    resources: list[dict[str, Any]] = []
    for res in served:
        if res.group_version != group_version:
            continue
        resources.append(
            {
                "name": res.plural,
                "singularName": res.singular,
                "namespaced": res.namespaced,
                "kind": res.kind,
                "verbs": list(res.verbs),
                "shortNames": list(res.short_names),
                "categories": list(res.categories),
            }
        )
        resources.extend(
            {
                "name": f"{res.plural}/{sub}",
                "singularName": "",
                "namespaced": res.namespaced,
                "kind": res.kind,
                "verbs": list(_SUB_VERBS),
            }
            for sub in res.subresources
        )
    if not resources and group_version != "v1":
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def _discovery_resource(res: ServedResource) -> dict[str, Any]:
    kind = {"group": res.group, "version": res.version, "kind": res.kind}
    entry: dict[str, Any] = {
        "resource": res.plural,
        "responseKind": kind,
        "scope": "Namespaced" if res.namespaced else "Cluster",
        "singularResource": res.singular,
        "verbs": list(res.verbs),
    }
    if res.short_names:
        entry["shortNames"] = list(res.short_names)
    if res.categories:
        entry["categories"] = list(res.categories)
    if res.subresources:
        entry["subresources"] = [
            {"subresource": sub, "responseKind": kind, "verbs": list(_SUB_VERBS)}
            for sub in res.subresources
        ]
    return entry


def aggregated(served: Iterable[ServedResource], *, core: bool) -> dict[str, Any]:
    """``GET /api`` (``core``) or ``/apis`` as ``apidiscovery.k8s.io/v2`` APIGroupDiscoveryList."""
    by_group: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for res in served:
        if (res.group == "") != core:
            continue
        versions = by_group.setdefault(res.group, {})
        versions.setdefault(res.version, []).append(_discovery_resource(res))
    items = [
        {
            "metadata": {"name": group},
            "versions": [
                {"version": version, "resources": resources, "freshness": "Current"}
                for version, resources in versions.items()
            ],
        }
        for group, versions in sorted(by_group.items())
    ]
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }


def wants_aggregated(accept: str) -> bool:
    """True when the client takes the v2 aggregated form first (kubectl, client-go)."""
    first = accept.split(",", 1)[0].replace(" ", "")
    return "g=apidiscovery.k8s.io" in first and "v=v2;" in first + ";"


# The core kinds kubectl touches: namespaces (``kubectl get ns``, ``-n``) and events
# (``kubectl describe``, ``kubectl events``; the operator posts them).
CORE: Final = (
    ServedResource(
        group="",
        version="v1",
        plural="namespaces",
        kind="Namespace",
        singular="namespace",
        namespaced=False,
        short_names=("ns",),
        subresources=("status",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    ServedResource(
        group="",
        version="v1",
        plural="events",
        kind="Event",
        singular="event",
        namespaced=True,
        short_names=("ev",),
    ),
)

# Leader election: the operator's replicas hold a Lease (fleet/runtime/kube/lease.py).
COORDINATION: Final = (
    ServedResource(
        group="coordination.k8s.io",
        version="v1",
        plural="leases",
        kind="Lease",
        singular="lease",
        namespaced=True,
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
)
