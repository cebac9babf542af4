"""``loadtest/run``: a whole fleet on 127.0.0.1, a swarm of simulated devices, and a verdict.

Why it exists: it is the acceptance check (``--devices 20 --deployments 3 --duration 20``
in CI) and the benchmark (``--devices 1000 / 10000 / 100000``). In order it:

1. starts a local nats-server (JetStream, own store in the work dir) and creates the
   buckets; the Kubernetes API emulator; ``fleet-operator`` pointed at both;
2. starts locust headless (``--run-time`` = ``--duration``) with one simulated device
   per user (:mod:`loadtest.locustfile`), and waits until every device registered;
3. applies ``--deployments`` Deployments in namespace ``fleet-load`` selecting the swarm
   (by ``matchLabels``, ``In``/``NotIn`` and ``Exists``), and watches the desired-state
   stream and the aggregates to time the rollout;
4. when locust ends, checks every aggregate against the buckets (:mod:`loadtest.check`),
   prints PASS or FAIL with the differences and a figures report, and exits 0 only on
   PASS. ``--inject-fault stale-aggregate`` freezes the operator and rewrites one
   Running device's report as Failed first: the check must then FAIL.

``--scenario rollout`` replaces steps 3 and 4 with a progressive rollout and its verdict
(:mod:`loadtest.rollout_run`).

What it must never do: talk to anything but 127.0.0.1, or leave a process running.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fleet.cli.fleetctl.snapshots import decoded
from fleet.contracts import BUCKET_DEVICE_INFO, decode_info_entry
from fleet.runtime.nats.buckets import BucketSettings
from loadtest.check import check_until, list_deployments
from loadtest.dashboard_viewer import OpenDashboard
from loadtest.figures import Figures, locust_rows, write
from loadtest.metrics_check import metrics_problems, metrics_url
from loadtest.options import locust_command, parse_args
from loadtest.plan import Plane, apply_deployments, inject_stale_aggregate, stream_counts
from loadtest.rollout_run import Scenario
from loadtest.runtime_mix import render_mix, score_types
from loadtest.services import (
    ExistingApi,
    KubeEmulatorProcess,
    Process,
    TreeUsage,
    operator_argv,
    usage_of,
)
from loadtest.shard_check import shard_problems
from loadtest.tap import DesiredTap

NAMESPACE = "fleet-load"
STATS_SETTLE_S = 5.0  # a device's batch (0.25 s) + a worker's report (3 s) + a CSV write (1 s)


def _stop_on_sigterm(signum: int, _frame: object) -> None:
    # Once: a second SIGTERM (``timeout`` forwards its own) must not cut the unwinding short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)  # unwinds the ExitStack: every child is stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fleet-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # The rollout scenario's draw (who is offline, who fails the new image, who is in
    # which batch) hangs on the device ids: the same --seed and --devices, the same draw.
    scenario = args.scenario == "rollout"
    swarm = f"load-s{args.seed}" if scenario else f"load-{secrets.token_hex(3)}"
    figures = Figures(
        devices=args.devices,
        deployments=args.deployments,
        processes=args.processes,
        devices_per_connection=args.devices_per_connection,
        heartbeat_interval_s=args.heartbeat_interval,
        load_average=[os.getloadavg()[0]],
    )
    what = "a rollout" if scenario else f"{args.deployments} Deployments"
    if args.runtime_mix:
        what += f" over the runtime mix {render_mix(args.mix)}"
    print(
        f"loadtest: {args.devices} devices, {what}, at most {args.duration:g}s, swarm {swarm}, "
        f"work dir {workdir}",
        flush=True,
    )
    with contextlib.ExitStack() as stack:
        settings = BucketSettings(replicas=args.bucket_replicas)
        plane = stack.enter_context(Plane(workdir=workdir, auth=args.auth, tls=not args.no_tls,
                                          urls=args.nats_url, buckets=settings))  # fmt: skip
        kube: KubeEmulatorProcess | ExistingApi
        if args.kube_url:
            kube = ExistingApi(args.kube_url, namespace=NAMESPACE)
        else:
            kube = KubeEmulatorProcess(log=workdir / "kube-emulator.log")
            stack.callback(kube.stop)
        dashboard = OpenDashboard(on=args.operator_dashboard == "on")
        operators = [
            Process(
                name="fleet-operator" if args.shards == 1 else f"fleet-operator-{index}",
                argv=[
                    *operator_argv(),
                    "--metrics-address",
                    # one machine, many runs: never 8080 of the host
                    "127.0.0.1:0" if args.operator_metrics == "on" else "off",
                    *(arg for url in plane.urls for arg in ("--nats-url", url)),
                    "--bucket-replicas",
                    str(args.bucket_replicas),
                    "--kube-url",
                    kube.url,
                    "--namespace",
                    NAMESPACE,
                    "--liveness-timeout",
                    str(args.liveness_timeout),
                    "--log-level",
                    "INFO",
                    *plane.operator_args(),
                    *dashboard.operator_args(),
                    *shard_args(args.shards, index),
                ],
                log=workdir / ("operator.log" if index == 0 else f"operator-{index}.log"),
                env=dashboard.operator_env(),
            )
            for index in range(args.shards)
        ]
        operator = operators[0]  # the one operator, or shard 0
        for each in operators:
            stack.callback(each.stop)
        stack.callback(dashboard.stop, workdir)
        dashboard.start()
        csv = workdir / "locust"
        started = time.monotonic()
        locust = Process(
            name="locust",
            argv=locust_command(
                args, nats_url=",".join(plane.urls), swarm=swarm, csv=csv, extra=plane.swarm_args()
            ),
            log=workdir / "locust.log",
        )
        stack.callback(locust.stop)
        if scenario:
            return Scenario(
                args, plane=plane, kube_url=kube.url, namespace=NAMESPACE, swarm=swarm,
                locust=locust, operator=operator, started=started,
            ).run(workdir)  # fmt: skip
        swarm_usage = TreeUsage(locust.pid)
        # sharded: every desired-state put, to show each Deployment had one writer
        tap = DesiredTap(plane.bus, plane.loop).start() if args.shards > 1 else None
        if tap is not None:
            stack.callback(tap.stop)
        problems = rollout(
            args,
            plane=plane,
            kube_url=kube.url,
            swarm=swarm,
            locust=locust,
            operator=operator,
            figures=figures,
            started=started,
            usage=swarm_usage,
            pids={
                **{f"operator-{i}": p.pid for i, p in enumerate(operators) if i},
                "operator": operator.pid,
                "nats-server": plane.nats_pid,
                "kube-emulator": kube.pid,
            },
        )
        end = started + args.duration + 60
        if args.until_settled and figures.settled_s is not None:
            end = 0.0  # check now, with the swarm still up; it is stopped afterwards
        while locust.alive() and time.monotonic() < end:
            swarm_usage.sample()
            time.sleep(0.5)
        if locust.alive() and end:
            locust.stop()
            problems.append(
                f"locust did not end within 60 s of its --run-time; killed:\n{locust.tail()}"
            )
        swarm_usage.sample()
        figures.swarm_cpu_s = swarm_usage.cpu_s
        figures.swarm_peak_rss_mb = swarm_usage.peak_rss_mb  # the largest locust process
        problems += [
            f"{each.name} exited ({each.proc.returncode}):\n{each.tail()}"
            for each in operators
            if not each.alive()
        ]
        if args.inject_fault == "stale-aggregate":
            operator.pause()
            print(f"loadtest: injected fault: {inject_stale_aggregate(plane, NAMESPACE)}")
        verdict = check_until(
            loop=plane.loop,
            bus=plane.bus,
            kube_url=kube.url,
            namespace=NAMESPACE,
            liveness_timeout=args.liveness_timeout,
            settle=args.settle,
        )
        problems += sanity(args, figures, verdict.counts)
        problems += sharding(tap, operators, kube.url)
        metrics_on = (
            args.operator_metrics == "on" and args.inject_fault != "stale-aggregate"
            and args.shards == 1
        )  # fmt: skip
        if verdict.ok and operator.alive() and metrics_on:
            differ, samples = metrics_problems(
                base=metrics_url(operator.log), loop=plane.loop, bus=plane.bus,
                kube_url=kube.url, namespace=NAMESPACE, liveness_timeout=args.liveness_timeout,
            )  # fmt: skip
            problems += differ
            figures.metrics_samples = None if differ else samples
        verdict.lines[:0] = problems
        verdict.ok = verdict.ok and not problems
        measure_costs(figures, operator=operator, nats_pid=plane.nats_pid)
        figures.load_average.append(os.getloadavg()[0])
        if locust.alive():  # --until-settled
            # Locust's CSV is rewritten every second from what its workers reported (every
            # 3 s); it is not rewritten on quitting. Let the last measurements reach it.
            time.sleep(STATS_SETTLE_S)
            locust.stop(timeout=60)
        figures.locust = locust_rows(Path(f"{csv}_stats.csv"))
        figures.verdict = "PASS" if verdict.ok else "FAIL"
        print(verdict.render())
        print(figures.render())
        write(figures, workdir / "figures.json")
    return 0 if verdict.ok else 1


def sharding(tap: DesiredTap | None, operators: list[Process], kube_url: str) -> list[str]:
    """With shards: whether each Deployment had one writer, its own shard."""
    if tap is None:
        return []
    names = [str(obj["metadata"]["name"]) for obj in list_deployments(kube_url, NAMESPACE)]
    return shard_problems(tap.writes(), [each.log for each in operators], names, NAMESPACE)


def shard_args(shards: int, index: int) -> list[str]:
    """One operator, or shard ``index`` of ``shards`` on its own Lease in the run's
    namespace (the API emulator's, or the one --kube-url serves)."""
    if shards == 1:
        return []
    return ["--shards", str(shards), "--shard-index", str(index), "--leader-elect",
            "--lease-namespace", NAMESPACE, "--lease-identity", f"load-shard-{index}"]  # fmt: skip


def rollout(
    args: argparse.Namespace,
    *,
    plane: Any,
    kube_url: str,
    swarm: str,
    locust: Process,
    operator: Process,
    figures: Figures,
    started: float,
    usage: TreeUsage,
    pids: dict[str, int | None],
) -> list[str]:
    """Wait for the swarm, apply the Deployments, time the rollout; return problems."""
    deadline = started + args.duration + 30
    while time.monotonic() < deadline and locust.alive():
        figures.registered = counts(plane, "device-info", default=(figures.registered, 0))[0]
        if figures.registered >= args.devices:
            break
        time.sleep(0.2)
    if figures.registered < args.devices:
        return [
            f"only {figures.registered} of {args.devices} devices registered before the "
            f"swarm ended; see {locust.log}:\n{locust.tail()}"
        ]
    figures.spawn_s = time.monotonic() - started
    types = score_types(args.mix)
    # devices per score type that run it: the entries the operator must write
    runnable = runnable_counts(plane, types) if args.runtime_mix else {"podman": args.devices}
    state0 = counts(plane, "device-state", default=(0, 0))[1]
    cpu0 = window_cpu(pids, usage)
    applied = time.monotonic()
    apply_deployments(
        kube_url=kube_url, namespace=NAMESPACE, swarm=swarm, count=args.deployments, types=types
    )
    wanted = sum(runnable[types[i % len(types)]] for i in range(args.deployments))
    unrunnable = (
        {t: figures.registered - n for t, n in runnable.items()} if args.runtime_mix else None
    )
    last_seq, last_change = state0, applied
    while (
        locust.alive()
        and figures.settled_s is None
        and operator.alive()
        and time.monotonic() < deadline
    ):
        now = time.monotonic()
        usage.sample()
        seq = counts(plane, "device-state", default=(0, last_seq))[1]
        if seq != last_seq:
            last_seq, last_change = seq, now
        if figures.desired_s is None:
            written = counts(plane, "desired-state", default=(0, 0))[0]
            if written >= wanted:
                figures.desired_s = now - applied
                figures.desired_writes_per_s = wanted / max(figures.desired_s, 1e-3)
        if figures.desired_s is not None and settled(kube_url, figures.registered, unrunnable):
            figures.settled_s = now - applied
            figures.last_report_s = last_change - applied
            reports = counts(plane, "device-state", default=(state0, state0))[1]
            figures.reports_per_s = (reports - state0) / max(figures.settled_s, 1e-3)
            cpu1 = window_cpu(pids, usage)
            figures.rollout_cpu_s = {k: round(cpu1[k] - cpu0.get(k, 0.0), 1) for k in cpu1}
        time.sleep(0.1)
    return []


def window_cpu(pids: dict[str, int | None], swarm: TreeUsage) -> dict[str, float]:
    """CPU-seconds so far of each process of the run (the swarm: all locust processes)."""
    out = {}
    for name, pid in pids.items():
        usage = usage_of(pid) if pid is not None else None
        if usage is not None:
            out[name] = usage.cpu_s
    swarm.sample()
    out["swarm"] = swarm.cpu_s
    return out


def sanity(
    args: argparse.Namespace, figures: Figures, expected: dict[str, dict[str, int]]
) -> list[str]:
    """A run that did not measure what it meant to is no PASS, even with true aggregates."""
    problems = []
    unreachable = max((c["unreachable"] for c in expected.values()), default=0)
    if unreachable and args.silent_rate == 0:
        problems.append(
            f"{unreachable} devices were unreachable though none was told to go silent: the "
            "swarm (or this machine) did not keep their heartbeats up; see 'KV put heartbeat'"
        )
    churn = args.silent_rate > 0 or args.relabel_rate > 0
    if figures.registered >= args.devices and figures.settled_s is None and not churn:
        problems.append("the aggregates never settled (none pending) before the swarm ended")
    return problems


def counts(plane: Plane, bucket: str, *, default: tuple[int, int]) -> tuple[int, int]:
    """A bucket's (messages, last sequence); ``default`` when the server is too busy to say."""
    try:
        return plane.loop.run(stream_counts(plane.bus, bucket), timeout=30)
    except Exception as exc:  # a busy server must not end the run: this poll is skipped
        print(f"loadtest: counting {bucket} failed ({exc!r}); retrying", flush=True)
        return default


def settled(kube_url: str, devices: int, unrunnable: Mapping[str, int] | None = None) -> bool:
    """Every Deployment targets every registered device; none is unreachable, and none
    pending but those that cannot run its score's type (``unrunnable``, per type: they
    have no entry, so they stay pending)."""
    items = list_deployments(kube_url, NAMESPACE)
    for obj in items:
        agg = (obj.get("status") or {}).get("aggregate") or {}
        kind = str(((obj.get("spec") or {}).get("score") or {}).get("type", "podman"))
        left = (unrunnable or {}).get(kind, 0)
        if agg.get("targeted") != devices or agg.get("pending") != left or agg.get("unreachable"):
            return False
    return bool(items)


def runnable_counts(plane: Plane, types: tuple[str, ...]) -> dict[str, int]:
    """How many registered devices list each score type in their device-info."""

    async def read() -> dict[str, int]:
        infos = await plane.bus.snapshot(BUCKET_DEVICE_INFO, timeout=300)
        out = dict.fromkeys(types, 0)
        for e in decoded(infos, decode_info_entry):
            if e.info is not None:
                for kind in e.info.runnable:
                    if kind in out:
                        out[kind] += 1
        return out

    return plane.loop.run(read(), timeout=600)


def measure_costs(figures: Figures, *, operator: Process, nats_pid: int | None) -> None:
    op = usage_of(operator.pid) if operator.alive() else None
    if op is not None:
        figures.operator_peak_rss_mb, figures.operator_cpu_s = op.peak_rss_mb, op.cpu_s
    ns = usage_of(nats_pid) if nats_pid is not None else None
    if ns is not None:
        figures.nats_peak_rss_mb, figures.nats_cpu_s = ns.peak_rss_mb, ns.cpu_s


if __name__ == "__main__":
    sys.exit(main())
