"""What the local demo shows: devices and Deployments live, then containers and the page.

Why it exists: :mod:`fleet.cli.demo` runs the fleet; this module only reads it (through
``fleetctl``'s own reading and rendering, so the demo and ``fleetctl`` show the same
facts) and prints it. On a terminal it redraws the screen every second; otherwise it
prints a snapshot each time something other than a heartbeat's age changed.

It must never change the fleet.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from typing import Any

from fleet.cli.fleetctl import render, view
from fleet.cli.fleetctl.connect import Buckets, kube_client
from fleet.devtools.local_fleet import LocalFleet
from fleet.runtime.kube.client import DEPLOYMENTS


class Display:
    """What the user watches: devices and Deployments, redrawn as they change."""

    def __init__(self, fleet: LocalFleet, buckets: Buckets) -> None:
        self.fleet = fleet
        self.buckets = buckets
        self.kube = kube_client(kube_url=fleet.kube.url, kubeconfig=None, context=None, timeout=5)
        self._last = ""
        self.tty = sys.stdout.isatty()
        self.footer = ""  # kept on screen under the tables once converged (TTY)

    def read(self) -> tuple[list[view.Row], list[view.Row]]:
        devices = view.device_rows(
            self.buckets.devices(), liveness_timeout=self.fleet.liveness_timeout, at=view.now()
        )
        items = self.kube.list(DEPLOYMENTS, namespace=None).get("items") or []
        deployments = sorted((view.deployment_row(i) for i in items), key=lambda r: r["name"])
        return devices, deployments

    def show(self, devices: list[view.Row], deployments: list[view.Row]) -> None:
        text = f"{render.devices_table(devices)}\n\n{render.deployments_table(deployments)}"
        key = json.dumps(
            [[{k: v for k, v in d.items() if "heartbeat" not in k} for d in devices], deployments],
            sort_keys=True,
        )
        if self.tty:
            stamp = time.strftime("%H:%M:%S")
            runtime = (
                "podman" if self.fleet.podman else f"SIMULATED ({self.fleet.simulated_reason})"
            )
            head = (
                f"\x1b[H\x1b[2Jfleet demo - {stamp} - NATS {self.fleet.nats.url}, API emulator "
                f"{self.fleet.kube.url}, agents on {runtime}. Ctrl-C stops it all."
            )
            print(f"{head}\n\n{text}\n\n{self.footer}".rstrip() + "\n", flush=True)
        elif key != self._last:
            print(f"--- {time.strftime('%H:%M:%S')}\n{text}\n", flush=True)
        self._last = key

    def close(self) -> None:
        self.kube.api_client.close()  # type: ignore[no-untyped-call]


def converged(deployments: list[view.Row], expected: dict[str, int]) -> bool:
    rows = {r["name"]: r for r in deployments}
    return all(
        name in rows and rows[name]["converged"] and rows[name]["targeted"] == count
        for name, count in expected.items()
    )


def _fetch(port: int, *, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _containers(fleet: LocalFleet) -> list[dict[str, Any]]:
    if fleet.podman is None:
        return []
    found = fleet.podman.containers()
    rows = []
    for c in found:
        labels: dict[str, str] = c.get("Labels") or {}  # type: ignore[assignment]
        names: list[str] = c.get("Names") or []  # type: ignore[assignment]
        rows.append(
            {
                "name": names[0] if names else "?",
                "device": labels.get("fleet.nationtech.io/device", "-"),
                "deployment": labels.get("fleet.nationtech.io/deployment", "-"),
                "state": c.get("State"),
            }
        )
    return sorted(rows, key=lambda r: r["name"])


def show_result(fleet: LocalFleet, host_port: int) -> tuple[bool, str]:
    """The containers (names must not collide) and the page; False if something is wrong."""
    if fleet.podman is None:
        return True, "Simulated runtime: no real containers to list and no page to fetch."
    ok = True
    rows = _containers(fleet)
    lines = ["Containers (podman ps, the demo's private storage):"]
    lines.append(
        render.table(
            ("NAME", "DEVICE", "DEPLOYMENT", "STATE"),
            ((r["name"], r["device"], r["deployment"], r["state"]) for r in rows),
        )
    )
    names = [r["name"] for r in rows]
    if len(set(names)) != len(names) or not all(r["device"] in r["name"] for r in rows):
        lines.append("WARNING: container names collide or do not name their device")
        ok = False
    try:
        page = _fetch(host_port)
        lines.append(f"\ncurl http://127.0.0.1:{host_port}/   (hello-web on pi-lab-1)\n{page}")
    except OSError as exc:
        lines.append(f"\nthe page at http://127.0.0.1:{host_port}/ could not be fetched: {exc}")
        ok = False
    return ok, "\n".join(lines).rstrip("\n")


def where(display: Display, name: str) -> str:
    """``fleetctl status NAME``, for the report of a demo that did not converge."""
    row = view.deployment_row(display.kube.get(DEPLOYMENTS, namespace="default", name=name))
    buckets, fleet = display.buckets, display.fleet
    desired, reports = buckets.deployment(name)
    devices = view.status_rows(
        name=name,
        desired=desired,
        reports=reports,
        heartbeats=buckets.read("device-heartbeat"),
        liveness_timeout=fleet.liveness_timeout,
        at=view.now(),
    )
    return render.status_text(row, devices)
