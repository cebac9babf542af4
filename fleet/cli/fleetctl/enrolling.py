"""``fleetctl enroll``, ``fleetctl token`` and ``fleetctl device revoke|label``: a person's
part in enrollment (docs/security.md).

Why it exists: a device that asks to join shows up as an ``EnrollmentRequest``; a person
approves or denies it here (``spec.decision``; the operator answers the device at its
next ask), or creates a ``BootstrapToken`` that approves devices by itself. ``token
create`` prints ``<id>.<secret>`` once: only the secret's SHA-256 is stored.
``device revoke`` sets ``decision: Revoked`` (kept, so a revocation is never lost) and
deletes the Device resource: the operator revokes the key within seconds.
``device label`` changes the Device's ``spec.labels``: the approved labels the operator
targets an enrolled device by.

What it must never do: print or store a token's secret anywhere but the one line
``token create`` prints, or write a bucket.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import re
import secrets
import string
import sys
from collections.abc import Callable
from typing import Any

from fleet.actors.operator.mirror import device_resource_name
from fleet.contracts import API_VERSION, KIND_BOOTSTRAP_TOKEN
from fleet.contracts.labels import check_labels
from fleet.errors import ConfigError
from fleet.runtime.kube.client import (
    BOOTSTRAP_TOKENS,
    DEVICES,
    ENROLLMENT_REQUESTS,
    KubeClient,
)

from . import device_setup, render
from .connect import kube_errors

_ALPHABET = string.ascii_lowercase + string.digits
_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_USES = 10_000


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``enroll``, ``token`` and ``device`` commands."""
    p = sub.add_parser("enroll", parents=[common], help="enrollment requests: list, approve, deny")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", parents=[common], help="every enrollment request and its phase")
    for name in ("approve", "deny"):
        a = actions.add_parser(name, parents=[common], help=f"{name} a device's request")
        a.add_argument("device", metavar="DEVICE", help="the device id")
    p = sub.add_parser("token", parents=[common], help="bootstrap tokens: create, list")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("create", parents=[common], help="a token that approves devices")
    a.add_argument("--ttl", default="24h", help="lifetime: 90s, 30m, 24h, 7d (default: 24h)")
    a.add_argument("--uses", type=int, default=1, help=f"devices it approves (default: 1, "
                   f"at most {MAX_USES})")  # fmt: skip
    a.add_argument("--label", action="append", default=[], metavar="K=V",
                   help="a label a device may ask for; repeatable (none: no labels)")  # fmt: skip
    actions.add_parser("list", parents=[common], help="tokens: expiry, uses left, labels")
    p = sub.add_parser("device", parents=[common], help="one device: set up, revoke, label")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser(
        "setup", parents=[common],
        help="make a machine reachable by SSH a device: podman, the agent, its config, "
        "its unit; done when its heartbeat shows on the bus",
    )  # fmt: skip
    device_setup.add_setup_arguments(a)
    a = actions.add_parser("revoke", parents=[common], help="revoke a device's credential")
    a.add_argument("device", metavar="DEVICE", help="the device id")
    a = actions.add_parser(
        "label", parents=[common],
        help="change the labels an enrolled device is targeted by (its Device's spec.labels)",
    )  # fmt: skip
    a.add_argument("device", metavar="DEVICE", help="the device id")
    a.add_argument("changes", nargs="+", metavar="K=V|K-", help="set K to V, or remove K")


# -- the commands (Ctl delegates) ---------------------------------------------------


def enroll(kube: KubeClient, a: argparse.Namespace, say: Callable[[str], None]) -> int:
    """``fleetctl enroll list|approve|deny``."""
    with kube_errors(kube):
        if a.action == "list":
            rows = request_rows(kube.list(ENROLLMENT_REQUESTS, namespace=None))
            say(render.as_json(rows) if a.output == "json" else requests_table(rows))
            return 0
        decide(kube, a.device, "Approved" if a.action == "approve" else "Denied")
    verdict = "approved" if a.action == "approve" else "denied"
    say(f"enrollment of {a.device} {verdict} (the device hears it at its next ask)")
    return 0


def token(kube: KubeClient, a: argparse.Namespace, say: Callable[[str], None]) -> int:
    """``fleetctl token list|create``: a new token is printed once, to stdout."""
    with kube_errors(kube):
        if a.action == "list":
            rows = token_rows(kube.list(BOOTSTRAP_TOKENS, namespace=None))
            say(render.as_json(rows) if a.output == "json" else tokens_table(rows))
            return 0
        made, expires = create_token(
            kube, ttl=parse_ttl(a.ttl), uses=a.uses, labels=parse_labels(a.label)
        )
    print(f"token expires {expires}, {a.uses} use(s); shown once:", file=sys.stderr)
    say(made)
    return 0


def device(kube: KubeClient, a: argparse.Namespace, say: Callable[[str], None]) -> int:
    """``fleetctl device revoke|label``."""
    with kube_errors(kube):
        if a.action == "label":
            labels = relabel(kube, a.device, a.changes)
            say(f"device {a.device} is targeted by {render.labels(labels) or '(no labels)'}")
            return 0
        revoke(kube, a.device)
    say(f"device {a.device} revoked (its connections close within seconds)")
    return 0


# -- the parts ------------------------------------------------------------------------


def parse_ttl(text: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match.group(1)) <= 0:
        raise ConfigError(f"--ttl {text!r}: say 90s, 30m, 24h or 7d")
    return float(int(match.group(1)) * _UNIT[match.group(2)])


def parse_labels(items: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--label {item!r}: say key=value")
        labels[key] = value
    try:
        check_labels(labels)
    except ValueError as exc:
        raise ConfigError(f"--label: {exc}") from exc
    return labels


def create_token(
    client: KubeClient, *, ttl: float, uses: int, labels: dict[str, str]
) -> tuple[str, str]:
    """A new BootstrapToken; (``<id>.<secret>``, its expiry). The secret is shown once."""
    if not 1 <= uses <= MAX_USES:
        raise ConfigError(f"--uses must be 1..{MAX_USES}, got {uses}")
    ident = "".join(secrets.choice(_ALPHABET) for _ in range(6))
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(32))
    expires = datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(seconds=ttl)
    when = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "apiVersion": API_VERSION, "kind": KIND_BOOTSTRAP_TOKEN, "metadata": {"name": ident},
        "spec": {"expires": when, "usesLeft": uses, "labels": labels,
                 "secretHash": hashlib.sha256(secret.encode()).hexdigest()},
    }  # fmt: skip
    client.create(BOOTSTRAP_TOKENS, body=body)
    return f"{ident}.{secret}", when


def decide(client: KubeClient, device: str, decision: str) -> None:
    """Set ``spec.decision`` of ``device``'s EnrollmentRequest (``KubeNotFound``: none)."""
    name = device_resource_name(device)
    client.get(ENROLLMENT_REQUESTS, namespace=None, name=name)  # KubeNotFound says "no request"
    client.patch(ENROLLMENT_REQUESTS, namespace=None, name=name,
                 body={"spec": {"decision": decision}})  # fmt: skip


def revoke(client: KubeClient, device: str) -> None:
    """``decision: Revoked``, then the Device resource deleted: the operator revokes."""
    decide(client, device, "Revoked")
    client.delete(DEVICES, namespace=None, name=device_resource_name(device))


def relabel(client: KubeClient, device: str, changes: list[str]) -> dict[str, str]:
    """Apply ``K=V`` and ``K-`` to the Device's ``spec.labels`` (the approved labels the
    operator targets it by); the labels it has now. A bad change is a ``ConfigError`` and
    nothing is written; ``KubeNotFound`` if there is no such Device."""
    name = device_resource_name(device)
    spec = client.get(DEVICES, namespace=None, name=name).get("spec") or {}
    current = spec.get("labels")
    labels = dict(current) if isinstance(current, dict) else {}
    removed = []
    for change in changes:
        if change.endswith("-") and "=" not in change:
            removed.append(change[:-1])
            labels.pop(change[:-1], None)
        else:
            labels.update(parse_labels([change]))
    try:
        check_labels(labels)
    except ValueError as exc:
        raise ConfigError(f"the labels would be invalid: {exc}") from exc
    patch: dict[str, str | None] = {k: None for k in removed if k not in labels}
    patch.update(labels)
    client.patch(DEVICES, namespace=None, name=name, body={"spec": {"labels": patch}})
    return labels


def request_rows(listing: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for item in listing.get("items") or []:
        spec, status = item.get("spec") or {}, item.get("status") or {}
        conflict = [c for c in status.get("conditions") or [] if c.get("type") == "KeyConflict"]
        rows.append({
            "device": spec.get("deviceId"), "decision": _decision(spec, status),
            "phase": status.get("phase") or "Pending", "approved_by": status.get("approvedBy"),
            "reason": status.get("reason") or (conflict[0].get("message") if conflict else ""),
            "labels": spec.get("labels") or {}, "key": spec.get("publicKey"),
            "token": spec.get("tokenId"), "created": (item.get("metadata") or {}).get(
                "creationTimestamp"),
        })  # fmt: skip
    return sorted(rows, key=lambda r: str(r["device"]))


def _decision(spec: dict[str, Any], status: dict[str, Any]) -> str:
    """A person's decision; ``-`` when none was needed (a token approved it)."""
    if spec.get("decision"):
        return str(spec["decision"])
    return "-" if str(status.get("approvedBy") or "").startswith("token ") else "Pending"


def token_rows(listing: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for item in listing.get("items") or []:
        spec = item.get("spec") or {}
        rows.append({
            "id": (item.get("metadata") or {}).get("name"), "expires": spec.get("expires"),
            "uses_left": spec.get("usesLeft"), "labels": spec.get("labels") or {},
            "used_by": len((item.get("status") or {}).get("usedBy") or []),
        })  # fmt: skip
    return sorted(rows, key=lambda r: str(r["id"]))


def requests_table(rows: list[dict[str, Any]]) -> str:
    return render.table(
        ["DEVICE", "DECISION", "PHASE", "APPROVED-BY", "LABELS", "REASON"],
        [[r["device"], r["decision"], r["phase"], r["approved_by"] or "",
          render.labels(r["labels"]), r["reason"] or ""] for r in rows],
    )  # fmt: skip


def tokens_table(rows: list[dict[str, Any]]) -> str:
    return render.table(
        ["ID", "EXPIRES", "USES-LEFT", "USED", "LABELS"],
        [[r["id"], r["expires"], r["uses_left"], r["used_by"], render.labels(r["labels"])]
         for r in rows],
    )  # fmt: skip
