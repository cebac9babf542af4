"""The command line of ``loadtest/run``, and the locust command it becomes.

Why it exists: the defaults of a load run scale with its size (processes, devices per
connection, spawn rate, heartbeat interval, liveness timeout); they are decided here, in
one place, so the run's report can state them and docs/loadtest.md can explain them.

What it must never do: start anything.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from pathlib import Path

from loadtest.connections import CLIENTS
from loadtest.rollout_plan import IMAGE_V2
from loadtest.runtime_mix import parse_mix, render_mix, score_types
from loadtest.services import locust_argv

SCENARIOS = ("aggregates", "rollout")


def _check_shard_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 1 <= args.shards <= 16:
        p.error(f"--shards must be 1..16, got {args.shards}")
    if args.shards > 1 and args.operator_dashboard == "on":
        p.error("--shards: each shard would serve the dashboard on one port; leave it off")
    if args.shards > 1 and (args.scenario == "rollout" or args.inject_fault != "none"):
        p.error("--shards goes with --scenario aggregates and no --inject-fault")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="loadtest/run",
        description="Run fleet-operator against a locust swarm of simulated devices and check "
        "every Deployment's .status.aggregate. Exit 0 only on PASS.",
    )
    p.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="aggregates",
        help="aggregates: Deployments applied to the swarm, every aggregate checked (the "
        "default); rollout: one Deployment's progressive rollout of a second revision with a "
        "share of the fleet offline, checked from every desired-state write "
        "(docs/loadtest.md, 'The rollout scenario')",
    )
    p.add_argument("--devices", type=int, default=0, help="(0: 20; 1000 with --scenario rollout)")
    p.add_argument("--deployments", type=int, default=3)
    p.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="locust --run-time, seconds (0: 20; with --scenario rollout 600, the longest the "
        "run may take: it ends once decided)",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=0,
        help="locust processes (0: one per 30,000 devices, at most 4 and at most one a core)",
    )
    p.add_argument(
        "--devices-per-connection",
        type=int,
        default=0,
        help="devices sharing a NATS connection (0: 1 up to 2,000 devices per "
        "process, else at most 200 connections per process)",
    )
    p.add_argument(
        "--client",
        choices=CLIENTS,
        default="lite",
        help="the simulated devices' NATS client: lite (loadtest/natsproto.py, the default: "
        "a fraction of the CPU) or nats-py (the agent's own client)",
    )
    p.add_argument(
        "--spawn-rate",
        type=float,
        default=0.0,
        help="devices started per second (0: devices/5, within 20..500; 100 with --auth)",
    )
    p.add_argument(
        "--heartbeat-interval",
        type=float,
        default=0.0,
        help="seconds (0: 5 s, slower past 5,000 devices: at most 1,000 beats/s)",
    )
    p.add_argument(
        "--liveness-timeout",
        type=float,
        default=0.0,
        help="operator's and checker's (0: max(30, 3 x heartbeat interval))",
    )
    p.add_argument(
        "--failure-rate",
        type=float,
        default=None,
        help="share of rollouts that end Failed, by chance (default 0.1; none with --scenario "
        "rollout, whose failures are --bad-image's)",
    )
    p.add_argument(
        "--bad-image",
        action="store_true",
        help="with --scenario rollout: revision 2's image fails on --bad-image-rate of the "
        "devices (each by a hash of its id): the rollout must halt and roll back",
    )
    p.add_argument("--bad-image-rate", type=float, default=0.1, help="with --bad-image")
    p.add_argument(
        "--offline-rate",
        type=float,
        default=0.1,
        help="with --scenario rollout: share of the devices powered off before revision 2 "
        "and on again once its rollout ended",
    )
    p.add_argument("--silent-rate", type=float, default=0.0)
    p.add_argument("--relabel-rate", type=float, default=0.0)
    p.add_argument(
        "--churn-after",
        type=float,
        default=0.0,
        help="seconds after a device starts (0: a third of --duration)",
    )
    p.add_argument("--pulling-s", type=float, default=0.3)
    p.add_argument(
        "--settle",
        type=float,
        default=15.0,
        help="seconds the check waits for the aggregates to agree",
    )
    p.add_argument(
        "--until-settled",
        action="store_true",
        help="check as soon as the aggregates settled instead of at the end of --duration "
        "(figures runs without churn; --duration is then the longest the run may take)",
    )
    p.add_argument("--inject-fault", choices=["none", "stale-aggregate"], default="none")
    p.add_argument(
        "--shards",
        type=int,
        default=1,
        metavar="N",
        help="run N fleet-operator shards (--shards N --shard-index I --leader-elect, one "
        'process each; docs/operator.md, "Shards") instead of one operator; their /metrics '
        "are not checked (each counts its own Deployments only). Default: 1",
    )
    p.add_argument(
        "--operator-metrics",
        choices=["on", "off"],
        default="on",
        help="the operator's HTTP port (/metrics, probes), checked against the checker's "
        "counts after the run (on, the default); off: --metrics-address off (to measure "
        "what the metrics cost: benchmarks/metrics_overhead.py)",
    )
    p.add_argument(
        "--operator-dashboard",
        choices=["on", "off"],
        default="off",
        help="on: the operator serves its web dashboard and one viewer follows it as the page "
        "does (loadtest/dashboard_viewer.py; its counts in dashboard.json), to measure what "
        "an open dashboard costs: benchmarks/dashboard_overhead.py (default: off)",
    )
    p.add_argument("--workdir", type=Path, help="logs, CSV and figures.json (default: a temp dir)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--auth",
        action="store_true",
        help="device identity on (docs/security.md): nats-server with JWT auth and TLS, "
        "each device on its own connection with its own credential (lite client only)",
    )
    p.add_argument(
        "--no-tls",
        action="store_true",
        help="with --auth: JWT auth without TLS (to tell the two costs apart; never in a fleet)",
    )
    p.add_argument(
        "--runtime-mix",
        default="",
        help="the kinds of devices, by weight: the runtimes each lists (podman=8,kvm=1,"
        "kubernetes=1; a kind may list several: podman+kvm=1). Deployment i's score is of "
        "the mix's i-th type, round robin; every Deployment selects the whole swarm, so "
        "the devices that cannot run its type are targeted without an entry (default: "
        "podman only)",
    )
    _add_existing_services(p)
    args = p.parse_args(argv)
    rollout = args.scenario == "rollout"
    try:
        args.mix = parse_mix(args.runtime_mix)
    except ValueError as exc:
        p.error(str(exc))
    if args.runtime_mix and rollout:
        p.error("--runtime-mix only goes with --scenario aggregates")
    if args.runtime_mix and args.deployments < len(score_types(args.mix)):
        p.error(f"--runtime-mix: at least one Deployment a type: --deployments >= "
                f"{len(score_types(args.mix))}")  # fmt: skip
    _check_shard_args(p, args)
    if rollout:
        _check_rollout_args(p, args)
    if args.bad_image and not rollout:
        p.error("--bad-image only goes with --scenario rollout")
    args.devices = args.devices or (1000 if rollout else 20)
    args.duration = args.duration or (600.0 if rollout else 20.0)
    if args.failure_rate is None:
        args.failure_rate = 0.0 if rollout else 0.1
    if args.no_tls and not args.auth:
        p.error("--no-tls only goes with --auth")
    if args.nats_url and args.auth:
        p.error("--nats-url: the run's own identities (--auth) need its own nats-server")
    if args.auth and (args.client != "lite" or args.devices_per_connection > 1):
        p.error("--auth: the lite client, one device a connection (each its own credential)")
    if args.devices < 1 or args.deployments < 1:
        p.error("--devices and --deployments must be >= 1")
    cores = os.cpu_count() or 1
    args.processes = args.processes or min(4, cores, max(1, math.ceil(args.devices / 30000)))
    per_process = math.ceil(args.devices / args.processes)
    args.devices_per_connection = args.devices_per_connection or (
        1 if per_process <= 2000 or args.auth else math.ceil(per_process / 200)
    )
    # With --auth every device makes a TLS handshake and signs a nonce, and nats-server
    # checks both: at 500 connects/s on two cores handshakes passed the server's 2 s TLS
    # timeout and were reset (docs/benchmarks.md, "Device identity").
    top = 100.0 if args.auth else 500.0
    args.spawn_rate = args.spawn_rate or min(top, max(20.0, args.devices / 5))
    args.heartbeat_interval = args.heartbeat_interval or max(5.0, args.devices / 1000)
    args.liveness_timeout = args.liveness_timeout or max(30.0, 3 * args.heartbeat_interval)
    args.churn_after = args.churn_after or args.duration / 3
    return args


def _add_existing_services(p: argparse.ArgumentParser) -> None:
    """Point the run at services that already run instead of starting its own."""
    p.add_argument(
        "--nats-url",
        action="append",
        default=[],
        metavar="URL",
        help="an existing NATS (JetStream) server; repeat for each server of a cluster. Its "
        "buckets must hold no device yet: the verdict reads them whole (default: start a "
        "nats-server of its own)",
    )
    p.add_argument(
        "--kube-url",
        metavar="URL",
        help="an existing Kubernetes API over plain HTTP (another emulator, or `kubectl proxy` "
        "to a real cluster) with fleet's CRDs; the namespace fleet-load must hold no "
        "Deployment yet (default: start the API emulator)",
    )
    p.add_argument(
        "--bucket-replicas",
        type=int,
        default=1,
        metavar="N",
        help="given to the operator (--bucket-replicas): 3 on a 3-server cluster (default: 1)",
    )


def _check_rollout_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The rollout scenario's verdict predicts every failure: no chance, no churn."""
    for flag, value in (
        ("--failure-rate", args.failure_rate),
        ("--silent-rate", args.silent_rate),
        ("--relabel-rate", args.relabel_rate),
    ):
        if value:
            p.error(f"--scenario rollout: {flag} must be 0 (its failures are --bad-image's)")
    if args.inject_fault != "none" or args.auth:
        p.error("--scenario rollout: no --inject-fault, no --auth (its control has no identity)")
    for flag, rate in (
        ("--bad-image-rate", args.bad_image_rate),
        ("--offline-rate", args.offline_rate),
    ):
        if not 0.0 <= rate <= 1.0:
            p.error(f"{flag} must be within [0, 1], got {rate}")


def locust_command(
    args: argparse.Namespace, *, nats_url: str, swarm: str, csv: Path, extra: Sequence[str] = ()
) -> list[str]:
    argv = [
        *locust_argv(),
        "-f",
        str(Path(__file__).with_name("locustfile.py")),
        "--headless",
        "-u",
        str(args.devices),
        "-r",
        str(args.spawn_rate),
        "--run-time",
        f"{math.ceil(args.duration)}s",
        "--stop-timeout",
        "0",
        "--csv",
        str(csv),
        "--only-summary",
        "--loglevel",
        "INFO",
        "--nats-url",
        nats_url,
        "--swarm-id",
        swarm,
        "--devices-per-connection",
        str(args.devices_per_connection),
        "--nats-client",
        args.client,
        "--heartbeat-interval",
        str(args.heartbeat_interval),
        "--pulling-s",
        str(args.pulling_s),
        "--failure-rate",
        str(args.failure_rate),
        "--silent-rate",
        str(args.silent_rate),
        "--relabel-rate",
        str(args.relabel_rate),
        "--churn-after",
        str(args.churn_after),
        "--seed",
        str(args.seed),
    ]
    if args.processes > 1:
        argv += ["--processes", str(args.processes)]
    if args.runtime_mix:
        argv += ["--runtime-mix", render_mix(args.mix)]
    if args.scenario == "rollout":
        argv.append("--control")
        if args.bad_image:
            argv += [
                "--failing-image", IMAGE_V2, "--failing-image-rate", str(args.bad_image_rate)
            ]  # fmt: skip
    return [*argv, *extra]
