"""A Deployment's numbered revisions, kept as ``DeploymentRevision`` resources.

Why it exists: ``fleetctl rollout undo`` and an automatic rollback need the scores a
Deployment had before, after any restart of the operator. Like Kubernetes'
ControllerRevision, each score a Deployment's spec held is one namespaced
``DeploymentRevision`` (``<deployment>-r<N>``; ``spec.deployment``, ``spec.revision``,
``spec.score``), owned by the Deployment (garbage-collected with it), with the outcome
of its rollout in ``status`` (``Complete``, ``Halted``, ``RolledBack``): the rollout's
journal, written before a rollback changes any entry.

Every method blocks (the operator runs them on the gateway's threads, ``fleetctl``
directly). A revision read back is hostile input like any other: its score is decoded
and validated (``convert_score``, per-device templates kept as written:
``encode_template_score``) and re-encoded, and a record that fails is left out
with the reason, never fatal.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, NamedTuple

import msgspec

from fleet.contracts import (
    API_VERSION,
    KIND_DEPLOYMENT,
    KIND_DEPLOYMENT_REVISION,
    LABEL_REVISION_OF,
)
from fleet.contracts.labels import is_label_value
from fleet.contracts.score_template import encode_template_score
from fleet.errors import ContractError
from fleet.runtime.kube.client import DEPLOYMENT_REVISIONS, KubeClient

__all__ = ["RevisionRecord", "RevisionStore", "revision_name"]


class RevisionRecord(NamedTuple):
    number: int
    desired: bytes  # the score, encoded as the desired-state value
    outcome: str | None  # "Complete" | "Halted" | "RolledBack" | None: not ended
    reason: str
    name: str  # the DeploymentRevision's metadata.name
    created: str = ""


def revision_name(deployment: str, number: int) -> str:
    return f"{deployment}-r{number}"


def parse_revision(
    item: Any, *, deployment: str, uid: str | None = None
) -> RevisionRecord | str | None:
    """A listed object as a record of ``deployment`` (None: another's, or, given its
    ``uid``, an earlier Deployment's of the same name; str: unusable)."""
    if not isinstance(item, dict):
        return "not an object"
    meta, spec, status = (_dict(item.get(k)) for k in ("metadata", "spec", "status"))
    if spec.get("deployment") != deployment or (uid is not None and not _owned(meta, uid)):
        return None
    name = meta.get("name")
    number = spec.get("revision")
    if not isinstance(name, str) or isinstance(number, bool) or not isinstance(number, int):
        return f"{name!r}: spec.revision must be an integer"
    if number < 1:
        return f"{name}: spec.revision must be at least 1, got {number}"
    try:
        desired, _ = encode_template_score(spec.get("score"))  # per-device templates kept
    except ContractError as exc:
        return f"{name}: spec.score: {exc}"
    outcome = status.get("outcome")
    if outcome not in ("Complete", "Halted", "RolledBack"):
        outcome = None
    reason = status.get("reason")
    created = meta.get("creationTimestamp")
    return RevisionRecord(
        number=number,
        desired=desired,
        outcome=outcome,
        reason=reason[:1024] if isinstance(reason, str) else "",
        name=name,
        created=created if isinstance(created, str) else "",
    )


def _owned(meta: dict[str, Any], uid: str) -> bool:
    refs = meta.get("ownerReferences")
    return isinstance(refs, list) and any(
        isinstance(ref, dict) and ref.get("uid") == uid for ref in refs
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class Listed(NamedTuple):
    records: list[RevisionRecord]  # by number
    problems: list[str]


class RevisionStore:
    def __init__(self, client: KubeClient) -> None:
        self.client = client

    def list(self, *, namespace: str, deployment: str, uid: str | None = None) -> Listed:
        """The revisions of ``deployment`` (given its ``uid``: of that very resource, not
        of an earlier one of the same name whose revisions are not collected yet)."""
        data = self.client.list(DEPLOYMENT_REVISIONS, namespace=namespace)
        items = data.get("items")
        records: dict[int, RevisionRecord] = {}
        problems: list[str] = []
        for item in items if isinstance(items, list) else []:
            parsed = parse_revision(item, deployment=deployment, uid=uid)
            if isinstance(parsed, str):
                problems.append(parsed)
            elif parsed is not None:
                records[parsed.number] = parsed
        return Listed([records[n] for n in sorted(records)], problems)

    def create(
        self,
        *,
        namespace: str,
        deployment: str,
        uid: str,
        number: int,
        desired: bytes,
        outcome: str | None = None,
    ) -> None:
        """Create revision ``number`` (``KubeConflict`` if it exists already)."""
        labels = {LABEL_REVISION_OF: deployment} if is_label_value(deployment) else {}
        body: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": KIND_DEPLOYMENT_REVISION,
            "metadata": {
                "name": revision_name(deployment, number),
                "namespace": namespace,
                "labels": labels,
                "ownerReferences": [_owner(deployment, uid)],
            },
            "spec": {
                "deployment": deployment,
                "revision": number,
                "score": msgspec.json.decode(desired),
            },
        }
        if outcome is not None:
            body["status"] = _outcome(outcome, "")
        self.client.create(DEPLOYMENT_REVISIONS, body=body)

    def record_outcome(self, *, namespace: str, name: str, outcome: str, reason: str) -> None:
        self.client.patch(
            DEPLOYMENT_REVISIONS, namespace=namespace, name=name,
            body={"status": _outcome(outcome, reason)},
        )  # fmt: skip

    def delete(self, *, namespace: str, name: str) -> None:
        self.client.delete(DEPLOYMENT_REVISIONS, namespace=namespace, name=name)


def _owner(deployment: str, uid: str) -> dict[str, Any]:
    """The Deployment owns its revisions: they go when it goes."""
    return {"apiVersion": API_VERSION, "kind": KIND_DEPLOYMENT, "name": deployment, "uid": uid,
            "controller": True, "blockOwnerDeletion": False}  # fmt: skip


def _outcome(outcome: str, reason: str) -> Mapping[str, Any]:
    at = datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"outcome": outcome, "reason": reason[:1024], "at": at}
