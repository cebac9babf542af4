"""``fleet-operator``'s options for replicas and buckets: leader election, bucket
settings, shards, the namespaces that may be granted privileges (docs/operator.md, "High
availability" and "Shards"; docs/workloads.md, "Privileges").

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
    from fleet.actors.operator.shards import Shard
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
        "--shards",
        type=int,
        default=os.environ.get("FLEET_SHARDS") or "1",  # a string default: parsed by type
        metavar="N",
        help="run as one of N operator shards, each writing for the Deployments whose name "
        "hashes to it and the devices whose id does; N > 1 needs --leader-elect (one "
        "Lease per shard: NAME-shard-I). Default: 1, or $FLEET_SHARDS",
    )
    parser.add_argument(
        "--shard-index",
        type=int,
        default=os.environ.get("FLEET_SHARD_INDEX") or "0",
        metavar="I",
        help="which shard this process is, 0..N-1 (default: 0, or $FLEET_SHARD_INDEX)",
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


def shard_of_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Shard:
    """The shard ``--shards``/``--shard-index`` name; more than one needs ``--leader-elect``
    (a count change is handed over through the shard map: docs/operator.md, "Shards")."""
    from fleet.actors.operator.shards import Shard

    try:
        shard = Shard(count=args.shards, index=args.shard_index)
    except ConfigError as exc:
        parser.error(str(exc))
    if not shard.whole and not args.leader_elect:
        parser.error(
            f"--shards {shard.count} needs --leader-elect: each shard holds its own Lease, "
            "and a change of the shard count is handed over through them"
        )
    return shard
