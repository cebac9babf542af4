"""Rows a user reads, built from what was read from the buckets and the API.

Why it exists: ``fleetctl``'s tables, its JSON and the local demo's live display show the
same facts, computed once here. A device is online when its last heartbeat is younger
than the liveness timeout (the operator's rule); a device's class for a Deployment is the
operator's own :func:`~fleet.actors.operator.status.classify`, so ``fleetctl status``
and the Deployment's aggregate never disagree on what "running" means.

Pure: no I/O. Malformed bucket entries (bad keys, values that break the contract, a key
and a value naming different devices) are skipped, never fatal, as the operator and the
load checker skip them (:mod:`.snapshots`, over the contracts' entry decoders).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from fleet.actors.operator.status import classify
from fleet.contracts import (
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    DeploymentState,
    decode_heartbeat_entry,
    decode_info_entry,
    decode_report_entry,
)
from fleet.runtime.nats.kv import KvEntry

from .snapshots import decoded, desired_revisions

Row = dict[str, Any]


def now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


def rfc3339(at: datetime.datetime) -> str:
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _heartbeats(entries: Mapping[str, KvEntry]) -> dict[str, datetime.datetime]:
    beats = decoded(entries, decode_heartbeat_entry)
    return {str(e.device): e.beat.at for e in beats if e.beat is not None}


def _reports(entries: Mapping[str, KvEntry]) -> list[DeploymentState]:
    return [e.state for e in decoded(entries, decode_report_entry) if e.state is not None]


def device_rows(
    buckets: Mapping[str, Mapping[str, KvEntry]], *, liveness_timeout: float, at: datetime.datetime
) -> list[Row]:
    """One row per device seen in device-info or device-heartbeat, sorted by id."""
    rows: dict[str, Row] = {}

    def row(device: str) -> Row:
        return rows.setdefault(
            device,
            {
                "device": device,
                "labels": {},
                "online": False,
                "last_heartbeat": None,
                "heartbeat_age_s": None,
                "agent_version": None,
                "deployments": {},
            },
        )

    for entry in decoded(buckets.get(BUCKET_DEVICE_INFO, {}), decode_info_entry):
        if entry.info is not None:
            r = row(str(entry.device))
            r["labels"] = dict(entry.info.labels)
            r["agent_version"] = entry.info.agent_version
    for device, beat in _heartbeats(buckets.get(BUCKET_DEVICE_HEARTBEAT, {})).items():
        r = row(device)
        age = (at - beat).total_seconds()
        r["last_heartbeat"] = rfc3339(beat)
        r["heartbeat_age_s"] = round(age, 1)
        r["online"] = age <= liveness_timeout
    for report in _reports(buckets.get(BUCKET_DEVICE_STATE, {})):
        if str(report.device_id) in rows:
            rows[str(report.device_id)]["deployments"][str(report.deployment)] = str(report.phase)
    return [rows[d] for d in sorted(rows)]


def deployment_row(obj: Mapping[str, Any]) -> Row:
    """A Deployment resource as a row: its aggregate and its Ready condition."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    aggregate = status.get("aggregate") or {}
    ready: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
    )
    generation = int(meta.get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    return {
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "targeted": int(aggregate.get("targeted", 0)),
        "running": int(aggregate.get("running", 0)),
        "pending": int(aggregate.get("pending", 0)),
        "failed": int(aggregate.get("failed", 0)),
        "unreachable": int(aggregate.get("unreachable", 0)),
        "ready": ready.get("status", "Unknown"),
        "reason": ready.get("reason", "NoStatusYet" if not status else ""),
        "message": ready.get("message", ""),
        "generation": generation,
        "observed_generation": observed,
        "converged": ready.get("status") == "True" and observed == generation and generation > 0,
        "failing_devices": list(status.get("failingDevices") or []),
        # targets given no entry (at most 10 each): a template that cannot be rendered for
        # them, a score type their device-info does not list
        "unrenderable": list(status.get("unrenderable") or []),
        "unrunnable": list(status.get("unrunnable") or []),
        "deleting": bool(meta.get("deletionTimestamp")),
        "created": meta.get("creationTimestamp"),
    }


def status_rows(
    *,
    name: str,
    desired: Mapping[str, KvEntry],
    reports: Mapping[str, KvEntry],
    heartbeats: Mapping[str, KvEntry],
    liveness_timeout: float,
    at: datetime.datetime,
) -> list[Row]:
    """Per device targeted by (or still reporting on) deployment ``name``."""
    revisions = {
        str(device): revision
        for (device, deployment), revision in desired_revisions(desired).items()
        if deployment == name
    }
    states = {str(r.device_id): r for r in _reports(reports) if str(r.deployment) == name}
    beats = _heartbeats(heartbeats)
    rows = []
    for device in sorted(set(revisions) | set(states)):
        report = states.get(device)
        beat = beats.get(device)
        online = beat is not None and (at - beat).total_seconds() <= liveness_timeout
        revision = revisions.get(device)
        cls = classify(
            online=online,
            revision=revision,
            phase=report.phase if report else None,
            reported=report.desired_revision if report else -1,
        )
        rows.append(
            {
                "device": device,
                "targeted": revision is not None,
                "class": cls if revision is not None else "not-targeted",
                "phase": str(report.phase) if report else None,
                "message": report.message if report else None,
                "desired_revision": revision,
                "reported_revision": report.desired_revision if report else None,
                "online": online,
                "updated_at": rfc3339(report.updated_at) if report else None,
            }
        )
    return rows
