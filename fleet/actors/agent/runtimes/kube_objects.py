"""The pure rules of the ``kubernetes`` runtime: marks, the objects it applies, drift, readiness.

Why it exists: :mod:`.kubernetes` runs a pass against the cluster; what it decides from
(which labels make an object the deployment's, what an object is applied as, whether a
live object still holds what was applied, whether a workload is ready) is plain data in,
plain data out, tested without a cluster.

Marks: every object the agent applies, and the namespace it owns, carries
``fleet.nationtech.io/managed-by=fleet-agent``, ``.../device`` (the device id, or a hash
of it when it is not a label value), ``.../deployment``, ``.../revision`` (the desired
revision it was applied for) and ``.../score-hash`` (a hash of its manifest in the score
and the namespace: a changed manifest is applied again, an unchanged one adopted). The
namespace also carries the inventory annotation (``.../applied-kinds``): every
``apiVersion/Kind`` the agent applied into it, written *before* the objects, so an agent
killed mid-pass finds all it made.

What it must never do: I/O, or trust a live object's shape (everything read is checked).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Collection, Mapping
from typing import Any, Final

from fleet.contracts import DeploymentName, DeviceId

PREFIX: Final = "fleet.nationtech.io/"
MANAGED_BY_LABEL: Final = PREFIX + "managed-by"
MANAGED_BY: Final = "fleet-agent"
DEVICE_LABEL: Final = PREFIX + "device"
DEPLOYMENT_LABEL: Final = PREFIX + "deployment"
REVISION_LABEL: Final = PREFIX + "revision"
HASH_LABEL: Final = PREFIX + "score-hash"
KINDS_ANNOTATION: Final = PREFIX + "applied-kinds"
DEVICE_ANNOTATION: Final = PREFIX + "device-id"
MAX_INVENTORY: Final = 256  # kinds listed in one namespace's annotation (a hostile one is cut)
_LABEL_VALUE: Final = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")

WORKLOAD_KINDS: Final = frozenset({("apps", "Deployment"), ("apps", "StatefulSet"),
                                   ("apps", "DaemonSet")})  # fmt: skip


def device_value(device: DeviceId) -> str:
    """The device id as a label value (a hash when it is longer than 63 or ends oddly)."""
    if _LABEL_VALUE.fullmatch(device):
        return str(device)
    return "h-" + hashlib.sha256(device.encode()).hexdigest()[:40]


def owner_labels(device: DeviceId, deployment: str | None = None) -> dict[str, str]:
    """The labels selecting what the agent of ``device`` applied (for ``deployment``)."""
    labels = {MANAGED_BY_LABEL: MANAGED_BY, DEVICE_LABEL: device_value(device)}
    if deployment is not None:
        labels[DEPLOYMENT_LABEL] = deployment
    return labels


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(labels, dict):
        return {}
    return {k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)}


def meta_str(obj: Mapping[str, Any], key: str) -> str | None:
    meta = obj.get("metadata")
    value = meta.get(key) if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def is_owned(obj: Mapping[str, Any], device: DeviceId, deployment: str) -> bool:
    labels = labels_of(obj)
    return all(labels.get(k) == v for k, v in owner_labels(device, deployment).items())


def revision_of(obj: Mapping[str, Any]) -> int | None:
    value = labels_of(obj).get(REVISION_LABEL, "")
    return int(value) if value.isdigit() and len(value) < 19 else None


def manifest_hash(manifest: Mapping[str, Any], namespace: str) -> str:
    """Changes when the manifest or its namespace does (label-sized)."""
    text = json.dumps([namespace, manifest], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def desired_object(
    manifest: Mapping[str, Any],
    *,
    namespace: str,
    device: DeviceId,
    deployment: DeploymentName,
    revision: int,
) -> dict[str, Any]:
    """``manifest`` as the agent applies it: in ``namespace``, with the marks."""
    obj = copy.deepcopy(dict(manifest))
    meta = obj.setdefault("metadata", {})
    meta["namespace"] = namespace
    labels = dict(meta.get("labels") or {})
    labels.update(owner_labels(device, deployment))
    labels[REVISION_LABEL] = str(revision)
    labels[HASH_LABEL] = manifest_hash(manifest, namespace)
    meta["labels"] = labels
    obj.pop("status", None)
    return obj


POD_SECURITY_LABELS: Final = (
    "pod-security.kubernetes.io/enforce",
    "pod-security.kubernetes.io/warn",
)
"""Pod Security Admission's labels the agent sets on every namespace it owns."""


def pod_security_level(allowed: Collection[str]) -> str:
    """``privileged`` only when the device's ``[policy] allow`` has ``privileged``;
    else ``baseline`` (no privileged pods, host namespaces, host paths or added
    capabilities beyond the default set), whatever the score's manifests ask."""
    return "privileged" if "privileged" in allowed else "baseline"


def namespace_object(
    name: str,
    *,
    device: DeviceId,
    deployment: DeploymentName,
    revision: int,
    kinds: list[str],
    pod_security: str = "baseline",
) -> dict[str, Any]:
    """The namespace the agent owns, with its inventory of applied kinds and its Pod
    Security Admission level (:func:`pod_security_level`)."""
    labels = owner_labels(device, deployment)
    labels[REVISION_LABEL] = str(revision)
    for label in POD_SECURITY_LABELS:
        labels[label] = pod_security
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                KINDS_ANNOTATION: json.dumps(sorted(kinds)),
                DEVICE_ANNOTATION: str(device),
            },
        },
    }


def inventory(namespace: Mapping[str, Any]) -> list[str]:
    """The ``apiVersion/Kind`` entries a namespace's annotation lists (bad ones dropped)."""
    meta = namespace.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    raw = annotations.get(KINDS_ANNOTATION) if isinstance(annotations, dict) else None
    if not isinstance(raw, str) or len(raw) > 64 * 1024:
        return []
    try:
        found = json.loads(raw)
    except ValueError:
        return []
    if not isinstance(found, list):
        return []
    return [k for k in found[:MAX_INVENTORY] if isinstance(k, str) and k.count("/") in (1, 2)]


def holds(live: Any, wanted: Any, *, depth: int = 0) -> bool:
    """Whether ``live`` still holds every field of ``wanted`` (what was applied): maps by
    key (the server may add fields), lists element by element, scalars equal."""
    if depth > 64:
        return False
    if isinstance(wanted, dict):
        return isinstance(live, dict) and all(
            key in live and holds(live[key], value, depth=depth + 1)
            for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(live, list)
            and len(live) == len(wanted)
            and all(holds(a, b, depth=depth + 1) for a, b in zip(live, wanted, strict=True))
        )
    return bool(live == wanted)


def drifted(live: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """A live object no longer holds what was applied (edited by hand), or was applied
    from another manifest (its hash). A new revision of the same manifest is not drift:
    the object keeps the revision it was applied for (as podman's containers do)."""
    if labels_of(live).get(HASH_LABEL) != labels_of(wanted).get(HASH_LABEL):
        return True
    body = {k: v for k, v in wanted.items() if k not in ("metadata", "status")}
    meta = wanted.get("metadata") or {}
    marks = {k: meta[k] for k in ("labels", "annotations") if k in meta}
    if "labels" in marks:  # the revision it was applied for: not a reason to apply again
        marks["labels"] = {k: v for k, v in marks["labels"].items() if k != REVISION_LABEL}
    return not holds(dict(live), body) or not holds(live.get("metadata"), marks)


def readiness(group: str, kind: str, obj: Mapping[str, Any]) -> tuple[str, str | None]:
    """``("ready", None)``, ``("waiting", why)`` or ``("failed", why)`` for a workload
    (``Deployment``, ``StatefulSet``, ``DaemonSet``); anything else is ready once applied."""
    if (group, kind) not in WORKLOAD_KINDS:
        return "ready", None
    meta, spec, status = (_map(obj.get(key)) for key in ("metadata", "spec", "status"))
    conditions = status.get("conditions")
    for condition in conditions if isinstance(conditions, list) else []:  # hostile: total
        if (
            isinstance(condition, dict)
            and condition.get("type") == "Progressing"
            and condition.get("status") == "False"
            and condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            said = condition.get("message")
            return "failed", "ProgressDeadlineExceeded" + (
                f": {said}" if isinstance(said, str) else ""
            )
    generation, observed = (
        _int(meta.get("generation"), 0),
        _int(status.get("observedGeneration"), -1),
    )
    if observed < generation:
        return "waiting", f"its controller has not seen generation {generation} yet"
    if kind == "DaemonSet":
        wanted = _int(status.get("desiredNumberScheduled"), 0)
        ready = _int(status.get("numberReady"), 0)
        updated = _int(status.get("updatedNumberScheduled"), 0)
        available = _int(status.get("numberAvailable"), 0)
    else:
        wanted = _int(spec.get("replicas"), 1)
        ready = _int(status.get("readyReplicas"), 0)
        updated = _int(status.get("updatedReplicas"), 0)
        available = _int(status.get("availableReplicas"), ready) if kind == "Deployment" else ready
    if min(ready, updated, available) < wanted:
        return "waiting", f"{min(ready, updated, available)} of {wanted} ready"
    return "ready", None


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
