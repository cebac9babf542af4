"""``fleet-demo`` (``scripts/demo``): the whole fleet on this machine, live, on embedded defaults.

It starts a real nats-server, the Kubernetes API emulator with fleet's CRDs (a
development stand-in for a cluster), ``fleet-operator`` and three ``fleet-agent``s on a
private podman world (or, where podman cannot run, on a simulated runtime, and it says
so), applies ``deploy/examples/hello-web.yaml`` (image pointed at the local registry)
and a variant for the other devices (:mod:`fleet.devtools.demo_manifests` says why),
then shows the devices and the Deployments' aggregates converge, the containers, and
the page one of them serves. Ctrl-C (or SIGTERM) stops everything, in reverse order,
and removes every container. ``--once`` exits after showing the converged fleet (exit
1 if it did not converge within ``--timeout``).

Device identity is on (docs/security.md): nats-server with JWT auth and TLS (a
throwaway CA), the operator with ``--auth-dir``, and each agent enrolling with the
bootstrap credential and a bootstrap token made for it here (``fleetctl token create``'s
own function) and shown on screen, which approves it. ``--no-auth`` runs everything
open, as before identity existed: for development only, with a loud warning.

What it must never do: touch the machine's own containers or listen beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from fleet.cli.demo_display import Display, converged, show_result, where
from fleet.cli.fleetctl import enrolling, manifests
from fleet.cli.fleetctl.connect import Buckets
from fleet.devtools.demo_manifests import demo_deployments
from fleet.devtools.local_fleet import DEVICES, DemoDevice, LocalFleet, _port
from fleet.errors import ConfigError
from fleet.runtime.aiokit.loop import hush_tls_eof_warning
from fleet.runtime.kube.client import ENROLLMENT_REQUESTS, KubeClient

logger = logging.getLogger("fleet.demo")
TOKEN_TTL = 3600.0  # a token is needed at enrollment only; renewals use the device's own


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fleet-demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--once", action="store_true", help="show the converged fleet, tear down and exit"
    )
    parser.add_argument(
        "--simulated",
        action="store_true",
        help="run the agents on the simulated runtime even if podman works",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=150.0,
        metavar="SECONDS",
        help="how long to wait for convergence (default: 150)",
    )
    parser.add_argument(
        "--nats-port",
        type=int,
        default=0,
        help="port for nats-server (default: 4222 if free, else a free one)",
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="DEVELOPMENT ONLY: run NATS open (no JWT auth, no TLS, no enrollment), as "
        "before device identity; anyone on this machine may then rewrite every device",
    )
    return parser.parse_args(argv)


def demo_token(kube: KubeClient, device: DemoDevice) -> str:
    """A bootstrap token that approves ``device`` once, with exactly its labels."""
    token, _expires = enrolling.create_token(
        kube, ttl=TOKEN_TTL, uses=1, labels=dict(device.labels)
    )
    return token


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _apply(display: Display, bodies: list[dict[str, Any]], *, host_port: int) -> None:
    deadline = time.monotonic() + 30  # the devices announce themselves first
    while len(display.read()[0]) < len(DEVICES) and time.monotonic() < deadline:
        time.sleep(0.3)
    shown = bodies[0]["spec"]["score"]["containers"][0]["image"]
    print(
        f"\nApplying deploy/examples/hello-web.yaml (image {shown}, host port {host_port}) "
        "and hello-shop:"
    )
    for body in bodies:
        print(f"  deployment {body['metadata']['name']}: {manifests.apply(display.kube, body)}")
    print()


def _converge(
    fleet: LocalFleet, display: Display, bodies: list[dict[str, Any]], *, timeout: float
) -> bool:
    """Show the fleet until every Deployment runs on the devices it targets."""
    expected = {
        b["metadata"]["name"]: sum(
            all(d.labels.get(k) == v for k, v in b["spec"]["selector"]["matchLabels"].items())
            for d in DEVICES
        )
        for b in bodies
    }
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        devices, deployments = display.read()
        display.show(devices, deployments)
        if converged(deployments, expected):
            return True
        if dead := fleet.dead_children():
            for child in dead:
                print(f"{child.name} exited:\n{child.log_tail()}")
            return False
        time.sleep(1.0)
    print(f"not converged within {timeout:g} s; where each device stands:")
    for body in bodies:
        print(where(display, body["metadata"]["name"]), "\n")
    print("last lines of the logs:")
    for child in fleet.children:
        print(f"--- {child.name}\n{child.log_tail()}")
    return False


def _enrollments(display: Display) -> str:
    """The devices' enrollment requests, as ``fleetctl enroll list`` shows them."""
    rows = enrolling.request_rows(display.kube.list(ENROLLMENT_REQUESTS, namespace=None))
    return f"Enrollment requests (fleetctl enroll list):\n{enrolling.requests_table(rows)}\n"


def _exports(fleet: LocalFleet) -> str:
    env = fleet.client_env()
    names = [
        ["FLEET_NATS_URL", "FLEET_KUBE_URL"],
        ["FLEET_NATS_CREDENTIALS", "FLEET_NATS_CA"],
        ["KUBECONFIG"],
    ]
    return "".join(
        "  export " + " ".join(f"{k}={env[k]}" for k in line) + "\n"
        for line in names
        if all(k in env for k in line)
    )


def run(fleet: LocalFleet, args: argparse.Namespace) -> int:
    host_port = _port(8080)
    image = fleet.podman.image if fleet.podman else None
    bodies = demo_deployments(image=image, host_port=host_port)
    auth = fleet.auth
    with Buckets(
        urls=[fleet.nats.url], timeout=5,
        credentials=auth.fleetctl_creds if auth else None, tls_ca=auth.ca_cert if auth else None,
    ) as buckets:  # fmt: skip
        display = Display(fleet, buckets)
        try:
            _apply(display, bodies, host_port=host_port)
            if not _converge(fleet, display, bodies, timeout=args.timeout):
                return 1
            print("Converged: every targeted device reports Running.\n")
            enrollments = _enrollments(display) if auth is not None else ""
            if enrollments:
                print(enrollments, flush=True)
            ok, result = show_result(fleet, host_port)
            print(result, flush=True)
            if args.once:
                return 0 if ok else 1
            enroll = "  .venv/bin/fleetctl enroll list\n" if auth is not None else ""
            instructions = (
                f"\nThe dashboard (a live web page of the fleet): {fleet.dashboard_url}\n"
                "\nThe fleet keeps running. In another terminal:\n"
                f"{_exports(fleet)}"
                "  .venv/bin/fleetctl devices\n  .venv/bin/fleetctl deployments\n"
                "  .venv/bin/fleetctl status hello-web\n"
                f"{enroll}"
                "  .venv/bin/fleetctl delete hello-shop --wait\n"
                "  .venv/bin/kubectl get fleetdep -A        # kubectl works on the demo too\n"
                "Press Ctrl-C to stop everything."
            )
            # on a terminal the screen is redrawn: keep these under the tables
            display.footer = "\n".join(p for p in (enrollments, result, instructions) if p)
            print(instructions, flush=True)
            while True:
                time.sleep(2.0)
                if display.tty:
                    display.show(*display.read())
        finally:
            display.close()


def _say(text: str) -> None:
    """Print, unless the terminal is gone (the cleanup must go on regardless)."""
    with contextlib.suppress(OSError):
        print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    hush_tls_eof_warning()
    if args.no_auth:
        logger.warning(
            "--no-auth: NATS runs WITHOUT authentication and WITHOUT TLS, and devices join "
            "without enrollment: anything that reaches it may read and rewrite every device's "
            "desired state. For development only; never run a fleet like this."
        )
    # Ctrl-C, stopped, or its terminal closed: all tear down the same way (SIGINT too, as it
    # may have been inherited as ignored, e.g. when started in the background by a shell).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    root = Path(tempfile.mkdtemp(prefix="fleet-demo-"))
    fleet = LocalFleet(
        root=root, simulated=args.simulated, nats_port=args.nats_port or None,
        auth=not args.no_auth, enrollment_token=demo_token,
    )  # fmt: skip
    code = 1
    try:
        print("Starting a local fleet (Ctrl-C stops it all):", flush=True)
        fleet.start()
        code = run(fleet, args)
    except KeyboardInterrupt:
        print("\nInterrupted.", flush=True)
        code = 0
    except ConfigError as exc:  # e.g. no openssl for the throwaway CA
        hint = "" if args.no_auth else " (--no-auth runs without TLS: development only)"
        print(f"fleet-demo: {exc}{hint}", file=sys.stderr, flush=True)
        code = 2
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        _say("Stopping agents, operator, containers, registry, emulator and nats-server...")
        fleet.stop()
        shutil.rmtree(root, ignore_errors=True)
        _say("Stopped; nothing left running.")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
