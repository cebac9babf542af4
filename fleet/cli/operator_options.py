"""``fleet-operator``'s options for replicas and buckets: leader election, bucket
settings, the namespaces that may be granted privileges (docs/operator.md, "High
availability"; docs/workloads.md, "Privileges").

Why it exists: :mod:`fleet.cli.operator` parses, wires and waits; these option groups
and their checks are long enough to live apart. What it must never do: import a client
library at module import (the CLI starts fast; ``--help`` imports nothing heavy).
"""

from __future__ import annotations

import argparse
import os
import socket
from typing import TYPE_CHECKING

from fleet.errors import ConfigError

if TYPE_CHECKING:
    from fleet.runtime.nats.buckets import BucketSettings


def privileged_namespaces(text: str) -> frozenset[str] | None:
    """``--privileged-namespaces``: ``*`` (every namespace), or the namespaces listed."""
    if text.strip() == "*":
        return None
    return frozenset(ns.strip() for ns in text.split(",") if ns.strip())


def add_bucket_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bucket-replicas",
        type=int,
        default=int(os.environ.get("FLEET_BUCKET_REPLICAS", "1")),
        metavar="N",
        help="copies of each bucket on a JetStream cluster, 1..5 (default: "
        "$FLEET_BUCKET_REPLICAS or 1; 3 on a 3-node cluster)",
    )
    parser.add_argument(
        "--bucket-history",
        type=int,
        default=1,
        metavar="N",
        help="values kept per key, 1..64 (default: 1)",
    )
    parser.add_argument(
        "--bucket-max-bytes",
        type=int,
        default=-1,
        metavar="BYTES",
        help="the most each bucket may hold; a put past it is refused (default: -1, no bound)",
    )
    parser.add_argument(
        "--bucket-update",
        action="store_true",
        help="change existing buckets whose replicas, history or max bytes differ from "
        "the --bucket-* settings (default: report the difference and use them as they are)",
    )


def bucket_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> BucketSettings:
    from fleet.runtime.nats.buckets import BucketSettings

    try:
        return BucketSettings(
            replicas=args.bucket_replicas, history=args.bucket_history,
            max_bytes=args.bucket_max_bytes,
        )  # fmt: skip
    except ConfigError as exc:
        parser.error(str(exc))


def add_leader_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("FLEET_LEADER_ELECT", "") in {"1", "true", "yes"},
        help="run as one of several replicas: only the holder of the Lease writes; the "
        "others wait to take over (default: off, or $FLEET_LEADER_ELECT=true)",
    )
    parser.add_argument(
        "--lease-name",
        default="fleet-operator",
        metavar="NAME",
        help="the coordination.k8s.io Lease the replicas elect a leader on "
        "(default: fleet-operator)",
    )
    parser.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        metavar="NAMESPACE",
        help="the Lease's namespace (default: $POD_NAMESPACE or default)",
    )
    parser.add_argument(
        "--lease-identity",
        default=os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
        metavar="ID",
        help="this replica's name in the Lease (default: $POD_NAME or host-pid)",
    )
    parser.add_argument(
        "--lease-timing",
        default="15,10,2",
        metavar="DURATION,RENEW,RETRY",
        help="Lease duration, renew deadline and retry period in seconds, as client-go's "
        "(default: 15,10,2; duration > renew > retry)",
    )
    parser.add_argument(
        "--nats-connect-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="with --leader-elect: a leader that cannot reach NATS for this long at start "
        "gives the Lease up and exits 70, so another replica takes over (default: 120)",
    )


def lease_timing(
    parser: argparse.ArgumentParser, text: str, connect_timeout: float
) -> tuple[float, float, float]:
    if connect_timeout <= 0:
        parser.error(f"--nats-connect-timeout must be > 0, got {connect_timeout:g}")
    try:
        timing = tuple(float(part) for part in text.split(","))
    except ValueError:
        timing = ()
    if len(timing) != 3 or not timing[0] > timing[1] > timing[2] > 0:
        parser.error(
            f"--lease-timing must be DURATION,RENEW,RETRY seconds with duration > renew > "
            f"retry > 0, got {text!r}"
        )
    return timing[0], timing[1], timing[2]
