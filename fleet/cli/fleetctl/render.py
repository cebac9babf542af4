"""Tables and JSON for ``fleetctl`` (and the local demo's live display).

Why it exists: one place decides what a column shows, so the demo and ``fleetctl`` print
the same thing. It must never read or write anything but the rows it is given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from .view import Row


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Left-aligned columns, two spaces apart (as ``kubectl get`` prints them)."""
    cells = [[str(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s ago"
    if s < 7200:
        return f"{s // 60}m ago"
    return f"{s // 3600}h ago"


def labels(values: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(values.items())) or "-"


def devices_table(rows: Sequence[Row]) -> str:
    if not rows:
        return "No devices have announced themselves (bucket device-info is empty)."
    return table(
        ("DEVICE", "LABELS", "ONLINE", "LAST HEARTBEAT", "DEPLOYMENTS"),
        (
            (
                r["device"],
                labels(r["labels"]),
                r["online"],
                age(r["heartbeat_age_s"]),
                ",".join(f"{d}={p}" for d, p in sorted(r["deployments"].items())),
            )
            for r in rows
        ),
    )


def deployments_table(rows: Sequence[Row]) -> str:
    if not rows:
        return "No Deployments found."
    return table(
        ("NAMESPACE", "NAME", "TARGETED", "RUNNING", "PENDING", "FAILED", "UNREACHABLE", "READY"),
        (
            (
                r["namespace"],
                r["name"],
                r["targeted"],
                r["running"],
                r["pending"],
                r["failed"],
                r["unreachable"],
                f"{r['ready']} ({r['reason']})" if r["reason"] else r["ready"],
            )
            for r in rows
        ),
    )


def summary(row: Row) -> str:
    """One line: what a watcher sees change."""
    text = (
        f"{row['namespace']}/{row['name']}: {row['running']}/{row['targeted']} running, "
        f"{row['pending']} pending, {row['failed']} failed, {row['unreachable']} unreachable"
    )
    if row["reason"]:
        text += f" [{row['reason']}]"
    return text


def status_text(deployment: Row, devices: Sequence[Row]) -> str:
    lines = [summary(deployment)]
    if deployment["message"] and deployment["reason"] not in ("AllRunning", "Progressing"):
        lines.append(f"  {deployment['message']}")
    for kind in ("unrenderable", "unrunnable"):  # targets without an entry, so not below
        lines += (
            f"  {kind}: {u.get('device')}: {u.get('reason')}" for u in deployment.get(kind, ())
        )
    if not devices:
        lines.append("No device is targeted (no desired-state entry for this Deployment).")
        return "\n".join(lines)
    lines.append(
        table(
            ("DEVICE", "CLASS", "PHASE", "ONLINE", "REVISION", "MESSAGE"),
            (
                (
                    r["device"],
                    r["class"],
                    r["phase"],
                    r["online"],
                    _revisions(r),
                    r["message"],
                )
                for r in devices
            ),
        )
    )
    return "\n".join(lines)


def _revisions(row: Row) -> str:
    desired, reported = row["desired_revision"], row["reported_revision"]
    if desired is None:
        return f"- (reported {reported})"
    if reported is None or reported == desired:
        return str(desired)
    return f"{desired} (reported {reported})"


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True)
