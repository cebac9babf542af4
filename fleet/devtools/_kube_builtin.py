"""The built-in kinds the emulator serves beyond fleet's CRDs, and the few rules it checks.

It exists for the agent's ``kubernetes`` runtime (docs/runtimes.md), which applies
ordinary manifests into a cluster: ``apps/v1`` Deployment, StatefulSet and DaemonSet,
``v1`` ConfigMap, Service, Secret and Pod (the operator labels its leader's), and one
cluster-scoped kind (``rbac`` ClusterRole) so
that the agent's refusal of cluster-scoped kinds can be tried against discovery.

Only what a test must see refused is checked (:func:`check_object`): an ``apps/v1``
workload needs ``spec.selector`` and template labels that match it (422 ``Invalid``, as
the API server says it). Everything else is stored as sent: no defaults, no schema.

It must never do I/O or import kmock.
"""

from __future__ import annotations

from typing import Any, Final

from ._kube_discovery import ServedResource
from ._kube_validation import ApiError

WORKLOAD_PLURALS: Final = ("deployments", "statefulsets", "daemonsets")

KINDS: Final = (
    *(
        ServedResource(
            group="apps",
            version="v1",
            plural=plural,
            kind=kind,
            singular=kind.lower(),
            namespaced=True,
            short_names=(short,),
            categories=("all",),
            subresources=("status",),
        )
        for plural, kind, short in (
            ("deployments", "Deployment", "deploy"),
            ("statefulsets", "StatefulSet", "sts"),
            ("daemonsets", "DaemonSet", "ds"),
        )
    ),
    ServedResource(
        group="",
        version="v1",
        plural="configmaps",
        kind="ConfigMap",
        singular="configmap",
        namespaced=True,
        short_names=("cm",),
    ),
    ServedResource(
        group="",
        version="v1",
        plural="services",
        kind="Service",
        singular="service",
        namespaced=True,
        short_names=("svc",),
        categories=("all",),
        subresources=("status",),
    ),
    ServedResource(
        group="", version="v1", plural="secrets", kind="Secret", singular="secret", namespaced=True
    ),
    ServedResource(  # the operator labels its leader's pod (fleet/runtime/kube/leader_label.py)
        group="",
        version="v1",
        plural="pods",
        kind="Pod",
        singular="pod",
        namespaced=True,
        short_names=("po",),
        categories=("all",),
        subresources=("status",),
    ),
    ServedResource(
        group="rbac.authorization.k8s.io",
        version="v1",
        plural="clusterroles",
        kind="ClusterRole",
        singular="clusterrole",
        namespaced=False,
    ),
)
"""Served by every emulator, after the core kinds (``_kube_discovery.CORE``)."""


def check_object(res: ServedResource | None, obj: dict[str, Any]) -> None:
    """Refuse (422) what the API server would refuse of a built-in workload."""
    if res is None or res.group != "apps" or res.plural not in WORKLOAD_PLURALS:
        return
    spec = obj.get("spec")
    name = (obj.get("metadata") or {}).get("name")
    if not isinstance(spec, dict):
        raise _invalid(res, name, "spec: Required value")
    selector = spec.get("selector")
    match = selector.get("matchLabels") if isinstance(selector, dict) else None
    if not isinstance(match, dict) or not match:
        raise _invalid(res, name, "spec.selector: Required value")
    template = spec.get("template")
    meta = template.get("metadata") if isinstance(template, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(labels, dict) or any(labels.get(k) != v for k, v in match.items()):
        raise _invalid(
            res,
            name,
            f"spec.template.metadata.labels: Invalid value: {labels!r}: "
            "`selector` does not match template `labels`",
        )


def _invalid(res: ServedResource, name: object, why: str) -> ApiError:
    what = f"{res.kind}.{res.group}" if res.group else res.kind
    return ApiError(422, "Invalid", f'{what} "{name}" is invalid: {why}')
