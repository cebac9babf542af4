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
from loadtest.services import locust_argv


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="loadtest/run",
        description="Run fleet-operator against a locust swarm of simulated devices and check "
        "every Deployment's .status.aggregate. Exit 0 only on PASS.",
    )
    p.add_argument("--devices", type=int, default=20)
    p.add_argument("--deployments", type=int, default=3)
    p.add_argument("--duration", type=float, default=20.0, help="locust --run-time, seconds")
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
    p.add_argument("--failure-rate", type=float, default=0.1)
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
    args = p.parse_args(argv)
    if args.no_tls and not args.auth:
        p.error("--no-tls only goes with --auth")
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
    return [*argv, *extra]
