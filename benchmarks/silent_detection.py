"""How long after its last heartbeat a silent device is unreachable, in a running load run.

Why it exists: making heartbeats cheap must not lengthen the time to notice a device
that stopped beating (docs/benchmarks.md, "Heartbeats at 100,000 devices"); the spec is
the liveness timeout plus 5 s at that scale. This joins ``--probes`` probe devices to the
fleet of a running ``loadtest/run`` (its nats-server and API server, read from the
operator's command line), each targeted by its own Deployment in the run's namespace;
they beat every ``--interval`` seconds until each Deployment's aggregate counts its
device (online: ``pending``), then stop. It prints, per probe, the seconds from its last
beat (its ``at``) to the aggregate counting it ``unreachable`` (polled every 0.2 s), and
deletes the probes' Deployments.

    .venv/bin/python benchmarks/silent_detection.py --root <loadtest/run pid> [--probes 5]

What it must never do: touch the run's own Deployments or devices.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import time
from pathlib import Path
from typing import Any, cast

import kubernetes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet.actors.agent.reporting import DeviceEntries
from fleet.contracts import BUCKET_DEVICE_HEARTBEAT, BUCKET_DEVICE_INFO, DeviceId
from fleet.devtools.simprofile import SIMULATED_INVENTORY
from fleet.runtime.nats.bus import Bus
from loadtest.services import tree_pids

GROUP, VERSION, NAMESPACE = "fleet.nationtech.io", "v1alpha1", "fleet-load"
SCORE = {"type": "podman", "containers": [{"name": "web", "image": "localhost/busybox:test"}]}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _operator(root: int) -> int:
    """The fleet-operator process under ``root`` (a loadtest/run)."""
    for pid in tree_pids(root):
        cmd = _cmdline(pid)
        if "fleet-operator" in cmd or "fleet.cli.operator" in cmd:
            return pid
    raise SystemExit(f"no fleet-operator under {root}")


def _arg(args: list[str], name: str) -> str:
    for i, a in enumerate(args):
        if a == name:
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    raise SystemExit(f"{name} not on the operator's command line")


def main() -> None:  # noqa: PLR0915 - one scenario, read top to bottom
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=int, required=True)
    ap.add_argument("--probes", type=int, default=5)
    ap.add_argument("--interval", type=float, default=10.0)
    args = ap.parse_args()
    operator = _cmdline(_operator(args.root)).split()
    nats_url, kube_url = _arg(operator, "--nats-url"), _arg(operator, "--kube-url")
    timeout = float(_arg(operator, "--liveness-timeout"))
    config = kubernetes.client.Configuration()
    config.host = kube_url
    custom = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(config))
    tag = f"{int(time.time()) % 100000:05d}"
    names = [f"probe-silent-{tag}-{i}" for i in range(args.probes)]
    runs = {n: DeviceEntries(device_id=DeviceId(n), instance_id=f"probe-{tag}") for n in names}

    def aggregate(name: str) -> dict[str, int]:
        obj = cast(
            "dict[str, Any]",
            custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "deployments", name),
        )
        return dict((obj.get("status") or {}).get("aggregate") or {})

    async def run() -> list[float]:
        bus = Bus(urls=[nats_url], name="silent-probe")
        await bus.start()
        await bus.wait_connected(timeout=10)
        last: dict[str, float] = {}

        async def beat(name: str) -> None:
            at = datetime.datetime.now(tz=datetime.UTC)
            await bus.put(BUCKET_DEVICE_HEARTBEAT, *runs[name].heartbeat(at=at))
            last[name] = at.timestamp()

        try:
            for name in names:
                info = runs[name].info(labels={"fleet.probe": name}, inventory=SIMULATED_INVENTORY)
                await bus.put(BUCKET_DEVICE_INFO, *info)
                await beat(name)
                body = {
                    "apiVersion": f"{GROUP}/{VERSION}", "kind": "Deployment",
                    "metadata": {"name": name, "namespace": NAMESPACE},
                    "spec": {"selector": {"matchLabels": {"fleet.probe": name}}, "score": SCORE},
                }  # fmt: skip
                custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "deployments",
                                                       body)  # fmt: skip
            deadline = time.monotonic() + 600
            online: set[str] = set()
            while len(online) < len(names) and time.monotonic() < deadline:
                for name in names:
                    if time.time() - last[name] >= args.interval:
                        await beat(name)
                    if (
                        aggregate(name).get("targeted") == 1
                        and aggregate(name).get("unreachable", 1) == 0
                    ):
                        online.add(name)
                await asyncio.sleep(0.5)
            print(f"probes online: {len(online)}/{len(names)}", flush=True)
            for name in names:  # one last beat each, a second apart, then silence
                await beat(name)
                await asyncio.sleep(1.0)
            detected: dict[str, float] = {}
            deadline = time.monotonic() + timeout + 120
            while len(detected) < len(names) and time.monotonic() < deadline:
                for name in names:
                    if name not in detected and aggregate(name).get("unreachable") == 1:
                        detected[name] = time.time() - last[name]
                await asyncio.sleep(0.2)
            return [detected.get(n, float("nan")) for n in names]
        finally:
            await bus.close()
            for name in names:
                try:
                    custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE,
                                                           "deployments", name)  # fmt: skip
                except kubernetes.client.ApiException as exc:
                    print(f"{name} not deleted: {exc.status}")

    seconds = asyncio.run(run())
    shown = ", ".join(f"{s:.1f}" for s in seconds)
    print(f"liveness timeout {timeout:g} s; unreachable after the last beat: {shown} s "
          f"(max {max(seconds):.1f} s; spec: at most {timeout + 5:g} s)")  # fmt: skip


if __name__ == "__main__":
    main()
