"""The aggregate checker: PASS only if every Deployment's status matches what devices reported.

Why it exists: the load swarm's verdict. It reads the four buckets (device-info labels,
heartbeats, desired entries, device-state reports) and the Deployments in one
namespace, recomputes each aggregate independently (:mod:`loadtest.expected`), and
compares. The operator coalesces status patches, so the checker polls until the
aggregates match or ``settle`` seconds pass; it then prints PASS, or FAIL with every
difference of its last look, and says so in its exit code (0 only on PASS).

Also a command (used by ``loadtest/run`` and its tests)::

    python -m loadtest.check --nats-url nats://127.0.0.1:4222 --kube-url http://127.0.0.1:PORT \
        --namespace fleet-load --liveness-timeout 30

What it must never do: call a run PASS while any device is undecided (its heartbeat age
straddles the liveness timeout), or write anything anywhere.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from fleet.cli.fleetctl.snapshots import decoded, desired_revisions
from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    CRD_GROUP,
    CRD_VERSION,
    PLURAL_DEPLOYMENTS,
    decode_heartbeat_entry,
    decode_info_entry,
    decode_report_entry,
)
from fleet.errors import FleetError
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv import KvEntry
from loadtest.expected import (
    FleetView,
    Report,
    SelectorError,
    desired_differences,
    differences,
    expected_aggregate,
    unrunnable_differences,
)

EXIT_PASS = 0
EXIT_FAIL = 1


@dataclass(kw_only=True)
class Verdict:
    ok: bool
    undecided: int = 0
    lines: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> expected

    def render(self) -> str:
        head = "PASS" if self.ok else "FAIL"
        body = [f"  {name}: {counts}" for name, counts in sorted(self.counts.items())]
        diffs = [f"  - {line}" for line in self.lines]
        return "\n".join([head, *body, *diffs])


async def read_view(bus: Bus, *, timeout: float = 300.0) -> FleetView:
    """Every bucket, read once and decoded (:func:`view_of`)."""
    return view_of(
        infos=await bus.snapshot(BUCKET_DEVICE_INFO, timeout=timeout),
        beats=await bus.snapshot(BUCKET_DEVICE_HEARTBEAT, timeout=timeout),
        desired=await bus.snapshot(BUCKET_DESIRED_STATE, timeout=timeout),
        states=await bus.snapshot(BUCKET_DEVICE_STATE, timeout=timeout),
    )


def view_of(
    *,
    infos: Mapping[str, KvEntry],
    beats: Mapping[str, KvEntry],
    desired: Mapping[str, KvEntry],
    states: Mapping[str, KvEntry],
) -> FleetView:
    """The buckets' entries as the checker sees them. Each is decoded by the contracts'
    decoder of its bucket, key and value together: an entry that breaks the contract, or
    whose value names another device than its key, is skipped, as the operator and
    ``fleetctl`` skip it (:mod:`fleet.cli.fleetctl.snapshots`)."""
    reports = {
        (str(e.device), str(e.deployment)): Report(
            phase=str(e.state.phase.value), desired_revision=e.state.desired_revision
        )
        for e in decoded(states, decode_report_entry)
        if e.state is not None
    }
    device_infos = {
        str(e.device): e.info for e in decoded(infos, decode_info_entry) if e.info is not None
    }
    return FleetView(
        labels={device: info.labels for device, info in device_infos.items()},
        runtimes={device: info.runnable for device, info in device_infos.items()},
        beats={
            str(e.device): e.beat.at.timestamp()
            for e in decoded(beats, decode_heartbeat_entry)
            if e.beat is not None
        },
        desired={(str(d), str(n)): rev for (d, n), rev in desired_revisions(desired).items()},
        reports=reports,
    )


def list_deployments(kube_url: str, namespace: str) -> list[dict[str, Any]]:
    """The namespace's fleet Deployments, as the API server returns them."""
    from kubernetes import client

    config = client.Configuration()
    config.host = kube_url
    with client.ApiClient(config) as api:
        # the client types a custom object listing as ``object``: it is the JSON dict
        listing = cast(
            "dict[str, Any]",
            client.CustomObjectsApi(api).list_namespaced_custom_object(
                CRD_GROUP, CRD_VERSION, namespace, PLURAL_DEPLOYMENTS
            ),
        )
    items: list[dict[str, Any]] = listing.get("items", [])
    return items


def judge(
    *,
    deployments: Sequence[Mapping[str, Any]],
    view: FleetView,
    now: float,
    liveness_timeout: float,
    margin: float = 2.0,
) -> Verdict:
    """Compare every Deployment's status with the aggregate its devices imply."""
    verdict = Verdict(ok=True)
    if not deployments:
        verdict.lines.append("no Deployments found: nothing was checked")
    written: dict[str, list[str]] = {}
    for device, deployment in view.desired:
        written.setdefault(deployment, []).append(device)
    for obj in deployments:
        name = str(obj["metadata"]["name"])
        status = obj.get("status") or {}
        try:
            expected = expected_aggregate(
                view=view,
                deployment=name,
                selector=(obj.get("spec") or {}).get("selector") or {},
                now=now,
                liveness_timeout=liveness_timeout,
                margin=margin,
                score_type=str(((obj.get("spec") or {}).get("score") or {}).get("type", "podman")),
            )
        except SelectorError as exc:
            verdict.lines.append(f"{name}: {exc}")
            continue
        verdict.counts[name] = dict(expected.counts)
        verdict.undecided += len(expected.undecided)
        verdict.lines += differences(
            name=name, expected=expected, aggregate=status.get("aggregate")
        )
        verdict.lines += desired_differences(
            name=name, expected=expected, written=written.get(name, [])
        )
        verdict.lines += unrunnable_differences(
            name=name, expected=expected, listed=status.get("unrunnable") or []
        )
        generation = obj["metadata"].get("generation")
        observed = status.get("observedGeneration")
        if generation is not None and observed != generation:
            verdict.lines.append(
                f"{name}: status.observedGeneration is {observed}, metadata.generation {generation}"
            )
    verdict.ok = not verdict.lines and verdict.undecided == 0
    return verdict


def check_until(
    *,
    loop: EventLoopThread,
    bus: Bus,
    kube_url: str,
    namespace: str,
    liveness_timeout: float,
    settle: float,
    margin: float = 2.0,
    poll: float = 0.5,
) -> Verdict:
    """Look until the aggregates are right (PASS) or ``settle`` seconds passed (FAIL)."""
    deadline = time.monotonic() + settle
    while True:
        try:
            view = loop.run(read_view(bus), timeout=600)
        except FleetError as exc:  # a busy server: look again, until the deadline
            if time.monotonic() >= deadline:
                return Verdict(ok=False, lines=[f"could not read the buckets: {exc}"])
            time.sleep(poll)
            continue
        deployments = list_deployments(kube_url, namespace)
        verdict = judge(
            deployments=deployments,
            view=view,
            now=time.time(),
            liveness_timeout=liveness_timeout,
            margin=margin,
        )
        if verdict.ok or time.monotonic() >= deadline:
            if verdict.undecided and not verdict.lines:
                verdict.lines.append(
                    f"{verdict.undecided} devices stayed within {margin}s of the liveness "
                    "timeout: no decision possible"
                )
            return verdict
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.check",
        description="Check every fleet Deployment's .status.aggregate against the buckets.",
    )
    parser.add_argument("--nats-url", action="append", required=True, help="NATS URL (repeat)")
    parser.add_argument("--kube-url", required=True, help="Kubernetes API URL (plain HTTP)")
    parser.add_argument("--namespace", default="fleet-load")
    parser.add_argument("--liveness-timeout", type=float, default=30.0, help="as the operator's")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds to wait for agreement")
    args = parser.parse_args(argv)
    import uvloop

    loop = EventLoopThread(name="loadtest-check", loop_factory=uvloop.new_event_loop)
    loop.start()
    bus = Bus(urls=args.nats_url, name="loadtest-check")
    try:

        async def up() -> None:
            await bus.start()
            await bus.wait_connected(timeout=10)
            await bus.ensure_buckets()

        loop.run(up(), timeout=20)
        verdict = check_until(
            loop=loop,
            bus=bus,
            kube_url=args.kube_url,
            namespace=args.namespace,
            liveness_timeout=args.liveness_timeout,
            settle=args.settle,
        )
    finally:
        loop.run(bus.close(), timeout=10)
        loop.stop()
    sys.stdout.write(verdict.render() + "\n")
    return EXIT_PASS if verdict.ok else EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
