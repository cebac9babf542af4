"""The fleet as the dashboard shows it: devices indexed by label, Deployments with status.

Why it exists: the page asks for pages of a filtered devices table, the fleet's overview
and one Deployment's targets, up to a few times a second per viewer, over up to 100,000
devices. :class:`FleetView` keeps each device's latest info, heartbeat and reports (as
the operator's own decoded messages carry them), an index from each ``(label key,
value)`` to its devices (a selector's equality terms start from the smallest of their
sets), the ids in order, and each Deployment resource's spec selector and status (the
aggregate and ``Ready`` the operator wrote). Reachability is the operator's rule (a
heartbeat at most ``liveness_timeout`` old, :mod:`fleet.actors.operator.liveness`);
:meth:`FleetView.expire` notices devices going silent without a sweep (a heap of due
times), so the page hears of it within a tick.

A Deployment's targets by state are worked out here from what devices last reported
(running, failed, pending, unreachable); its bar is the aggregate the operator wrote in
``.status``, which also checks each report against the desired entry's revision.

Plain and synchronous, used from one thread (the dashboard's loop). What it must never
do: keep a device the operator forgot (a deleted info or heartbeat removes it), or grow
past one row per device and one per Deployment.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Iterator
from typing import Any, Final

import msgspec

from fleet.actors.operator import messages as m
from fleet.actors.operator.selectors import LabelSelector, parse_selector
from fleet.contracts import Phase
from fleet.errors import SpecError

from .query import DeviceQuery

MESSAGE_MAX: Final = 512
FAILING_SHOWN: Final = 100
TARGETS_SHOWN: Final = 200
CLASSES: Final = ("running", "pending", "failed", "unreachable")


class ReportRow(msgspec.Struct, frozen=True, kw_only=True):
    phase: str
    revision: int
    message: str
    updated_at: str


class DeviceRow:
    __slots__ = ("agent_version", "beat_at", "id", "inventory", "labels", "reports")

    def __init__(self, device: str) -> None:
        self.id = device
        self.labels: dict[str, str] = {}
        self.inventory: Any = None
        self.agent_version = ""
        self.beat_at: float | None = None
        self.reports: dict[str, ReportRow] = {}


class DeploymentRow(msgspec.Struct, kw_only=True):
    namespace: str
    name: str
    selector: LabelSelector | None
    selector_error: str | None
    aggregate: dict[str, int]
    ready: dict[str, str]
    failing: list[dict[str, str]]


class _Status(msgspec.Struct, kw_only=True):
    aggregate: dict[str, int] = msgspec.field(default_factory=dict)
    conditions: list[dict[str, Any]] = msgspec.field(default_factory=list)
    failingDevices: list[dict[str, Any]] = msgspec.field(default_factory=list)


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _deployment_row(obj: Any) -> DeploymentRow:
    selector: LabelSelector | None = None
    error: str | None = None
    try:
        spec = msgspec.json.decode(obj.spec)
        selector = parse_selector(spec.get("selector") if isinstance(spec, dict) else None)
    except (msgspec.DecodeError, SpecError) as exc:
        error = str(exc)
    try:
        status = msgspec.json.decode(obj.status, type=_Status | None) or _Status()
    except (msgspec.DecodeError, msgspec.ValidationError):
        status = _Status()
    ready = next((c for c in status.conditions if c.get("type") == "Ready"), {})
    return DeploymentRow(
        namespace=obj.namespace or "",
        name=obj.name,
        selector=selector,
        selector_error=error,
        aggregate={k: int(status.aggregate.get(k, 0)) for k in ("targeted", *CLASSES)},
        ready={k: str(ready.get(k, ""))[:MESSAGE_MAX] for k in ("status", "reason", "message")},
        failing=[
            {
                "device": str(f.get("device", ""))[:253],
                "message": str(f.get("message", ""))[:MESSAGE_MAX],
            }
            for f in status.failingDevices[:FAILING_SHOWN]
        ],
    )


class FleetView:
    def __init__(self, *, liveness_timeout: float) -> None:
        self.liveness_timeout = liveness_timeout
        self.devices: dict[str, DeviceRow] = {}
        self.deployments: dict[tuple[str, str], DeploymentRow] = {}
        self._by_label: dict[tuple[str, str], set[str]] = {}
        self._order: list[str] = []
        self._order_stale = False
        self._due: list[tuple[float, str]] = []  # (when it goes silent, device): a heap

    # -- feeding -------------------------------------------------------------------------

    def apply(self, message: object) -> bool:
        """One of the operator's decoded messages; whether anything shown changed."""
        if isinstance(message, m.BeatsSeen):
            return self._beats(message.beats)
        if isinstance(message, m.ReportsSeen):
            return self._reports(message.reports)
        if isinstance(message, m.InfosSeen):
            return self._infos(message.infos)
        if isinstance(message, m.DeploymentsListed):
            for key in [k for k in self.deployments if message.scope in (None, k[0])]:
                del self.deployments[key]
            for obj in message.objects:
                self.deployments[(obj.namespace or "", obj.name)] = _deployment_row(obj)
            return True
        if isinstance(message, m.DeploymentEvent):
            key = (message.obj.namespace or "", message.obj.name)
            if message.type == "DELETED":
                self.deployments.pop(key, None)
            else:
                self.deployments[key] = _deployment_row(message.obj)
            return True
        return False

    def _row(self, device: str) -> DeviceRow:
        row = self.devices.get(device)
        if row is None:
            row = self.devices[device] = DeviceRow(device)
            self._order_stale = True
        return row

    def _drop(self, device: str) -> None:
        row = self.devices.pop(device, None)
        if row is not None:
            self._unindex(row)
            self._order_stale = True

    def _unindex(self, row: DeviceRow) -> None:
        for pair in row.labels.items():
            members = self._by_label.get(pair)
            if members is not None:
                members.discard(row.id)
                if not members:
                    del self._by_label[pair]

    def _infos(self, infos: Iterable[tuple[Any, Any, int]]) -> bool:
        for device, info, _revision in infos:
            if info is None:
                self._drop(str(device))
                continue
            row = self._row(str(device))
            self._unindex(row)
            row.labels = dict(info.labels)
            for pair in row.labels.items():
                self._by_label.setdefault(pair, set()).add(row.id)
            row.inventory = msgspec.to_builtins(info.inventory)
            row.agent_version = info.agent_version
        return True

    def _beats(self, beats: Iterable[m.Beat]) -> bool:
        timeout, due = self.liveness_timeout, self._due
        for beat in beats:
            device = str(beat.device)
            if beat.when is None:
                self._drop(device)
                continue
            row = self._row(device)
            row.beat_at = beat.at
            heapq.heappush(due, (beat.at + timeout, device))
        if len(due) > 4 * len(self.devices) + 1024:  # beats superseded: rebuild, bounded
            self._due = [
                (r.beat_at + timeout, r.id) for r in self.devices.values() if r.beat_at is not None
            ]
            heapq.heapify(self._due)
        return True

    def _reports(self, reports: Iterable[m.Report]) -> bool:
        for report in reports:
            row = self.devices.get(str(report.device))
            if row is None:
                row = self._row(str(report.device))  # reports may come before the info
            name = str(report.deployment)
            if report.phase is None:
                row.reports.pop(name, None)
                continue
            updated = report.updated_at
            row.reports[name] = ReportRow(
                phase=str(report.phase),
                revision=report.desired_revision,
                message=(report.message or "")[:MESSAGE_MAX],
                updated_at=updated.strftime("%Y-%m-%dT%H:%M:%SZ") if updated else "",
            )
        return True

    def expire(self, *, now: float) -> bool:
        """Whether a device went silent since the last call (its last beat is too old)."""
        due, changed = self._due, False
        while due and due[0][0] < now:
            when, device = heapq.heappop(due)
            row = self.devices.get(device)
            if row is not None and row.beat_at is not None:
                changed = changed or row.beat_at + self.liveness_timeout == when
        return changed

    # -- reading ---------------------------------------------------------------------------

    def online(self, row: DeviceRow, now: float) -> bool:
        return row.beat_at is not None and now - row.beat_at <= self.liveness_timeout

    def _ordered(self) -> list[str]:
        if self._order_stale:
            self._order = sorted(self.devices)
            self._order_stale = False
        return self._order

    def _candidates(self, query: DeviceQuery) -> Iterator[str]:
        """Ids in order that may match: from the index when an equality term narrows."""
        best: set[str] | None = None
        for key, values in query.equalities:
            members: set[str] = set()
            for value in values:
                members |= self._by_label.get((key, value), set())
            if best is None or len(members) < len(best):
                best = members
        if best is None or len(best) * 8 > len(self.devices):
            ordered = self._ordered()
            return iter(ordered) if best is None else (d for d in ordered if d in best)
        return iter(sorted(best))

    def matching(self, query: DeviceQuery, *, now: float) -> Iterator[DeviceRow]:
        devices, selector, name, state = self.devices, query.selector, query.name, query.state
        for device in self._candidates(query):
            if name and name not in device:
                continue
            row = devices[device]
            if selector is not None and not selector.matches(row.labels):
                continue
            if state == "online" and not self.online(row, now):
                continue
            if state == "unreachable" and self.online(row, now):
                continue
            if state == "failing" and not any(
                r.phase == Phase.FAILED for r in row.reports.values()
            ):
                continue
            yield row

    def page(self, query: DeviceQuery, *, now: float) -> dict[str, Any]:
        start, size = query.page * query.size, query.size
        rows, total = [], 0
        for row in self.matching(query, now=now):
            if start <= total < start + size:
                rows.append(self.device_json(row, now))
            total += 1
        return {"total": total, "page": query.page, "size": size, "devices": rows}

    def device_json(self, row: DeviceRow, now: float) -> dict[str, Any]:
        return {
            "id": row.id,
            "online": self.online(row, now),
            "labels": row.labels,
            "inventory": row.inventory,
            "agentVersion": row.agent_version,
            "lastHeartbeat": _iso(row.beat_at),
            "deployments": [
                {
                    "deployment": name,
                    "phase": r.phase,
                    "revision": r.revision,
                    "message": r.message,
                    "updatedAt": r.updated_at,
                }
                for name, r in sorted(row.reports.items())
            ],
        }

    def overview(self, *, now: float) -> dict[str, Any]:
        online = sum(1 for row in self.devices.values() if self.online(row, now))
        return {
            "devices": {
                "total": len(self.devices),
                "online": online,
                "unreachable": len(self.devices) - online,
            },
            "deployments": [
                {
                    "namespace": d.namespace,
                    "name": d.name,
                    "aggregate": d.aggregate,
                    "ready": d.ready,
                }
                for _, d in sorted(self.deployments.items())
            ],
        }

    def deployment(self, namespace: str, name: str, *, now: float) -> dict[str, Any] | None:
        row = self.deployments.get((namespace, name))
        if row is None:
            return None
        targets: dict[str, list[str]] = {c: [] for c in CLASSES}
        counts = dict.fromkeys(CLASSES, 0)
        if row.selector is not None:
            for device in self._ordered():
                dev = self.devices[device]
                if not row.selector.matches(dev.labels):
                    continue
                cls = self._class(dev, name, now)
                counts[cls] += 1
                if len(targets[cls]) < TARGETS_SHOWN:
                    targets[cls].append(device)
        return {
            "namespace": row.namespace,
            "name": row.name,
            "aggregate": row.aggregate,
            "ready": row.ready,
            "failing": row.failing,
            "selectorError": row.selector_error,
            "targets": targets,
            "targetCounts": counts,
        }

    def _class(self, row: DeviceRow, deployment: str, now: float) -> str:
        if not self.online(row, now):
            return "unreachable"
        report = row.reports.get(deployment)
        if report is None:
            return "pending"
        if report.phase == Phase.RUNNING:
            return "running"
        if report.phase == Phase.FAILED:
            return "failed"
        return "pending"
