"""Leading, for ``fleet-operator --leader-elect``: wait for the Lease, label the pod,
connect to NATS in slices that give way to a stop.

Why it exists: :mod:`fleet.cli.operator` parses, wires and waits; how a replica becomes
the leader (and gives it up) is the part of that wait with rules of its own
(docs/operator.md, "High availability"). What it must never do: write anything shared
before the Lease is held (the authority, the buckets: see ``fleet.cli.operator``).
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleet.runtime.actorkit.supervisor import Supervisor
    from fleet.runtime.aiokit.loop import EventLoopThread
    from fleet.runtime.kube.lease import LeaseElector
    from fleet.runtime.kube.shard_map import ShardMap
    from fleet.runtime.nats.bus import Bus

logger = logging.getLogger("fleet.operator")
CONNECT_SLICE = 1.0  # seconds: how long a wait for NATS goes without looking at a stop


def elector_of(args: argparse.Namespace, api_client: Any) -> LeaseElector:
    """The candidate for this shard's Lease (``--lease-name`` itself for one shard)."""
    from fleet.runtime.kube.lease import LeaseElector, LeaseTiming
    from fleet.runtime.kube.shard_map import SHARDS_ANNOTATION, shard_lease_name

    duration, renew, retry = args.lease_timing
    shard = args.shard
    return LeaseElector(
        api_client, namespace=args.lease_namespace,
        name=shard_lease_name(args.lease_name, count=shard.count, index=shard.index),
        identity=args.lease_identity,
        timing=LeaseTiming(duration=duration, renew_deadline=renew, retry_period=retry),
        annotations={SHARDS_ANNOTATION: str(shard.count)},
    )  # fmt: skip


def shard_map_of(args: argparse.Namespace, api_client: Any) -> ShardMap:
    from fleet.runtime.kube.lease import LeaseTiming
    from fleet.runtime.kube.shard_map import ShardMap

    duration, renew, retry = args.lease_timing
    return ShardMap(
        api_client, namespace=args.lease_namespace, base=args.lease_name,
        count=args.shard.count, index=args.shard.index,
        timing=LeaseTiming(duration=duration, renew_deadline=renew, retry_period=retry),
    )  # fmt: skip


def lead(
    elector: LeaseElector, supervisor: Supervisor, *, shard_map: ShardMap | None = None
) -> bool:
    """Wait until this replica leads (False: stopped first); then keep the Lease, and
    stop the process (exit 70: Kubernetes restarts it as a candidate) if it is lost.
    Released on a clean stop, so the next replica takes over at once. With a
    ``shard_map``, leading also waits (renewing the Lease) until the shard map lets this
    shard's count write, and the process stops if the map changes count later."""
    from fleet.runtime.kube.leader_label import LeaderLabel

    supervisor.catch_signals()  # SIGTERM while waiting: a clean stop
    pod = os.environ.get("POD_NAME")  # in a pod: label it the leader's once it leads
    label = None if not pod else LeaderLabel(
        elector.api_client, namespace=os.environ.get("POD_NAMESPACE", elector.namespace), pod=pod
    )  # fmt: skip
    if label is not None:
        label.mark(leading=False)  # a restarted container starts as a candidate
    if not elector.acquire(supervisor.stop_event):
        return False
    elector.keep(on_lost=supervisor.fail)
    supervisor.add_cleanup("leader-lease", elector.release)
    if shard_map is not None:
        if not shard_map.wait(supervisor.stop_event):
            return False  # stopped while waiting: the cleanup releases the Lease
        shard_map.keep(on_changed=supervisor.fail)
        supervisor.add_cleanup("shard map", shard_map.stop)
    if label is not None:
        label.mark(leading=True)  # the dashboard's Service selects it
    return True


def timeout_under_lease(args: argparse.Namespace) -> float:
    """Under leader election: the operator's Kubernetes client timeout, at most Lease
    duration - renew deadline (5 s by default), so no call outlives the fence by more."""
    duration, renew, _ = args.lease_timing
    return max(1.0, min(10.0, float(duration - renew)))


def connect(
    args: argparse.Namespace,
    *,
    bus: Bus,
    loop_thread: EventLoopThread,
    supervisor: Supervisor,
    bounded: bool,
) -> bool:
    """Connect to NATS and make the buckets, in short slices that give way to a stop (a
    signal, a lost Lease). ``bounded`` (leader election): give up after
    ``--nats-connect-timeout`` (the process then exits 70 and releases the Lease, so a
    standby that may reach NATS takes over). False: stopped or given up."""
    import time

    from fleet.errors import BusUnavailable

    loop_thread.run(bus.start(), timeout=30)
    deadline = time.monotonic() + args.nats_connect_timeout
    while not bus.connected:
        if supervisor.stop_event.is_set():
            return False
        if bounded and time.monotonic() >= deadline:
            logger.error(
                "NATS unreachable for %gs (--nats-connect-timeout) while leading: giving "
                "the Lease up", args.nats_connect_timeout,
            )  # fmt: skip
            supervisor.fail(f"NATS at {', '.join(args.nats_url)} unreachable")
            return False
        try:
            loop_thread.run(bus.wait_connected(timeout=CONNECT_SLICE), timeout=CONNECT_SLICE + 5)
        except (BusUnavailable, TimeoutError):
            continue
    loop_thread.run(
        bus.ensure_buckets(
            enforce_limits=True, settings=args.bucket_settings, update=args.bucket_update
        ),
        timeout=3600,
    )
    return not supervisor.stop_event.is_set()
