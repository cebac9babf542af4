"""``fleetctl``: devices, deployments, status, apply, delete; enrollment (``enroll``,
``token``, ``device revoke|label``); ``logs`` and ``describe device`` (asked of the device);
``rollout status|pause|resume|approve|undo|history``; ``dashboard`` (a local web page);
``vm create|list|delete`` (test devices, :mod:`.vm`); tables or JSON; ``--watch``.

Exit codes: 0 done; 1 the request failed (not found, did not converge in time); 2 bad
usage, a bad manifest or no Kubernetes configuration; 3 NATS or the Kubernetes API could
not be reached. uvloop is chosen here, at the entry point (for the NATS reads).

What it must never do: write to the buckets (the operator owns desired state), or crash
on a bad entry: it shows it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from fleet.errors import ConfigError
from fleet.runtime.kube.client import (
    DEPLOYMENTS,
    KubeClient,
    KubeError,
    KubeNotFound,
)

from . import dashboard, device_setup, enrolling, manifests, ondemand, render, rollout, view, vm
from .connect import Buckets, Unreachable, kube_client, kube_errors

EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
DEFAULT_NATS = "nats://127.0.0.1:4222"
COMMON_DEFAULTS: dict[str, Any] = {
    "nats_url": None,
    "kube_url": None,
    "kubeconfig": None,
    "context": None,
    "output": "table",
    "connect_timeout": 5.0,
    "liveness_timeout": 30.0,
    "nats_credentials": None,
    "nats_ca": None,
}


def _common() -> argparse.ArgumentParser:
    """Options accepted before or after the command (defaults applied after parsing)."""
    p = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    p.add_argument(
        "--nats-url",
        action="append",
        metavar="URL",
        help=f"NATS server; repeatable (default: $FLEET_NATS_URL or {DEFAULT_NATS})",
    )
    p.add_argument(
        "--nats-credentials",
        type=Path,
        metavar="FILE",
        help="NATS .creds file (default: $FLEET_NATS_CREDENTIALS; fleetctl.creds of the "
        "operator's --auth-dir)",
    )
    p.add_argument(
        "--nats-ca",
        type=Path,
        metavar="FILE",
        help="CA (PEM) of the NATS server's certificate (default: $FLEET_NATS_CA)",
    )
    p.add_argument(
        "--kube-url",
        metavar="URL",
        help="plain-HTTP API server without credentials, e.g. the local emulator "
        "(default: $FLEET_KUBE_URL, else the kubeconfig)",
    )
    p.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)",
    )
    p.add_argument("--context", metavar="NAME", help="kubeconfig context (default: current)")
    p.add_argument("-o", "--output", choices=("table", "json"), help="table (default) or json")
    p.add_argument(
        "--connect-timeout",
        type=float,
        metavar="SECONDS",
        help="give up reaching NATS or the API after this long (default: 5)",
    )
    p.add_argument(
        "--liveness-timeout",
        type=float,
        metavar="SECONDS",
        help="a device whose last heartbeat is older is offline (default: 30, as the operator)",
    )
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="fleetctl",
        parents=[common],
        description="Look at and change a fleet: devices from NATS, Deployments from Kubernetes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("devices", parents=[common], help="devices: labels, online, heartbeat, phases")
    p = sub.add_parser("deployments", parents=[common], help="Deployments and their aggregates")
    p.add_argument("-n", "--namespace", help="only this namespace (default: all)")
    for name, text in (
        ("status", "one Deployment, per device: class, phase, failure message"),
        ("delete", "delete a Deployment (the operator removes it from its devices)"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("deployment", metavar="DEPLOYMENT")
        p.add_argument("-n", "--namespace", default="default", help="(default: default)")
    p = sub.add_parser("apply", parents=[common], help="create or update Deployments from a file")
    p.add_argument("-f", "--filename", required=True, metavar="FILE", help="YAML file, - for stdin")
    p.add_argument("-n", "--namespace", help="for documents without metadata.namespace")
    for name in ("status", "apply", "delete"):
        p = sub.choices[name]
        p.add_argument(
            "--timeout",
            type=float,
            default=300.0,
            metavar="SECONDS",
            help="how long --watch waits (default: 300)",
        )
        if name == "delete":
            p.add_argument(
                "--wait",
                action="store_true",
                help="wait until the operator has removed it from every device",
            )
        else:
            p.add_argument(
                "-w",
                "--watch",
                action="store_true",
                help="show progress until the Deployment converges (all running)",
            )
    enrolling.add_parsers(sub, common)
    ondemand.add_parsers(sub, common)
    rollout.add_parser(sub, common)
    dashboard.add_parser(sub, common)
    vm.add_parser(sub, common)
    args = parser.parse_args(argv)
    for key, value in COMMON_DEFAULTS.items():
        if not hasattr(args, key):
            setattr(args, key, value)
    if not args.nats_url:
        args.nats_url = [os.environ.get("FLEET_NATS_URL") or DEFAULT_NATS]
    args.kube_url = args.kube_url or os.environ.get("FLEET_KUBE_URL")
    for key, env in (("nats_credentials", "FLEET_NATS_CREDENTIALS"), ("nats_ca", "FLEET_NATS_CA")):
        if getattr(args, key) is None and os.environ.get(env):
            setattr(args, key, Path(os.environ[env]))
    return args


class Ctl:
    """One command's connections, opened when first needed."""

    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args = args
        self.out = out
        self._kube: KubeClient | None = None

    def print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    @property
    def kube(self) -> KubeClient:
        if self._kube is None:
            a = self.args
            self._kube = kube_client(
                kube_url=a.kube_url,
                kubeconfig=a.kubeconfig,
                context=a.context,
                timeout=a.connect_timeout,
            )
        return self._kube

    def buckets(self) -> Buckets:
        a = self.args
        return Buckets(
            urls=a.nats_url, timeout=a.connect_timeout, credentials=a.nats_credentials,
            tls_ca=a.nats_ca,
        )  # fmt: skip

    def close(self) -> None:
        if self._kube is not None:
            self._kube.api_client.close()  # type: ignore[no-untyped-call]

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        with kube_errors(self.kube):
            return self.kube.get(DEPLOYMENTS, namespace=namespace, name=name)

    # -- commands ---------------------------------------------------------------------

    def devices(self) -> int:
        with self.buckets() as b:
            data = b.devices()
        rows = view.device_rows(data, liveness_timeout=self.args.liveness_timeout, at=view.now())
        self.print(
            render.as_json(rows) if self.args.output == "json" else render.devices_table(rows)
        )
        return 0

    def deployments(self) -> int:
        with kube_errors(self.kube):
            items = self.kube.list(DEPLOYMENTS, namespace=self.args.namespace).get("items") or []
        rows = sorted(
            (view.deployment_row(i) for i in items),
            key=lambda r: (r["namespace"] or "", r["name"] or ""),
        )
        if self.args.output == "json":
            self.print(render.as_json(rows))
        else:
            self.print(render.deployments_table(rows))
        return 0

    def status(self) -> int:
        ns, name = self.args.namespace, self.args.deployment
        if self.args.watch and not self.watch(ns, name):
            return EXIT_FAILED
        self.show_status(ns, name)
        return 0

    def show_status(self, namespace: str, name: str) -> None:
        row = view.deployment_row(self.deployment(namespace, name))
        with self.buckets() as b:
            desired, reports = b.deployment(name)
            beats = b.read("device-heartbeat")
        devices = view.status_rows(
            name=name,
            desired=desired,
            reports=reports,
            heartbeats=beats,
            liveness_timeout=self.args.liveness_timeout,
            at=view.now(),
        )
        if self.args.output == "json":
            self.print(render.as_json({"deployment": row, "devices": devices}))
        else:
            self.print(render.status_text(row, devices))

    def watch(
        self, namespace: str, name: str, *, sleep: Callable[[float], None] = time.sleep
    ) -> bool:
        """Print each change of the aggregate until converged; False on timeout."""
        deadline = time.monotonic() + self.args.timeout
        last: tuple[str, ...] = ()
        while True:
            row = view.deployment_row(self.deployment(namespace, name))
            lines = (
                render.summary(row),
                *(f"  {f.get('device')}: {f.get('message')}" for f in row["failing_devices"]),
            )
            if lines != last and self.args.output != "json":
                self.print("\n".join(line for line in lines if line not in last[1:]))
                last = lines
            if row["converged"]:
                return True
            if time.monotonic() >= deadline:
                print(
                    f"fleetctl: {namespace}/{name} did not converge within "
                    f"{self.args.timeout:g} s: {render.summary(row)}",
                    file=sys.stderr,
                )
                return False
            sleep(0.5)

    def apply(self) -> int:
        bodies = manifests.load(self.args.filename, namespace=self.args.namespace)
        for body in bodies:
            with kube_errors(self.kube):
                result = manifests.apply(self.kube, body)
            meta = body["metadata"]
            self.print(
                f"deployment.fleet.nationtech.io/{meta['name']} {result} "
                f"(namespace {meta['namespace']})"
            )
        if not self.args.watch:
            return 0
        code = 0
        for body in bodies:
            meta = body["metadata"]
            if self.watch(meta["namespace"], meta["name"]):
                self.show_status(meta["namespace"], meta["name"])
            else:
                code = EXIT_FAILED
        return code

    def enroll(self) -> int:
        return enrolling.enroll(self.kube, self.args, self.print)

    def token(self) -> int:
        return enrolling.token(self.kube, self.args, self.print)

    def device(self) -> int:
        if self.args.action == "setup":
            return device_setup.run(self.args, self.out)
        return enrolling.device(self.kube, self.args, self.print)

    def logs(self) -> int:
        with self.buckets() as b:
            return ondemand.logs(b, self.args, self.out)

    def describe(self) -> int:
        with self.buckets() as b:
            return ondemand.describe(b, self.args, self.out)

    def rollout(self) -> int:
        return rollout.run(self.kube, self.args, self.out)

    def dashboard(self) -> int:
        return dashboard.run(self)

    def vm(self) -> int:
        return vm.run(self.args, self.out)

    def delete(self) -> int:
        ns, name = self.args.namespace, self.args.deployment
        with kube_errors(self.kube):
            manifests.delete(self.kube, namespace=ns, name=name)
        self.print(f"deployment.fleet.nationtech.io/{name} deleted (namespace {ns})")
        if not self.args.wait:
            return 0
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            try:
                self.deployment(ns, name)
            except KubeNotFound:
                self.print(f"{ns}/{name} removed from every device")
                return 0
            time.sleep(0.5)
        print(
            f"fleetctl: {ns}/{name} still there after {self.args.timeout:g} s "
            "(is fleet-operator running? it releases the finalizer)",
            file=sys.stderr,
        )
        return EXIT_FAILED


def main(argv: list[str] | None = None, *, out: TextIO | None = None) -> int:
    args = parse_args(argv)
    ctl = Ctl(args, out or sys.stdout)
    try:
        command: Callable[[], int] = getattr(ctl, args.command)
        return command()
    except Unreachable as exc:
        print(f"fleetctl: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (ConfigError, manifests.ManifestError) as exc:
        print(f"fleetctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KubeNotFound as exc:
        print(f"fleetctl: not found: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KubeError as exc:
        print(f"fleetctl: the Kubernetes API refused: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        ctl.close()


if __name__ == "__main__":
    sys.exit(main())
