"""Operator at fleet scale: N simulated devices, D Deployments selecting all of them.

Runs a real nats-server, the Kubernetes API emulator (a separate process) and the real
``fleet-operator`` (a separate process, so its RSS and CPU are its own). The simulated
devices (this process) publish info and a heartbeat, then report Running (``--phases``: Pending,
Pulling, Starting, Running) for each desired entry as soon as they see it, like agents
would; their values are the shared simulated device's (:mod:`fleet.devtools.simrollout`,
the agent's ``DeviceEntries``).

Measures, from the moment the Deployments are created:
  * all N*D desired entries written,
  * every Deployment's status aggregate correct (running == targeted == N),
and the operator's and nats-server's peak RSS (VmHWM) and CPU seconds, this process's CPU
seconds (the simulated devices), and the load average before and after (the machine is
shared: compare runs made back to back). "Written" is read from the stream's message
count (history 1: one message per live key). The devices publish and report through a
:class:`~fleet.runtime.nats.kv_publish.KvPublisher` so that they cost this machine little.

    .venv/bin/python benchmarks/operator_scale.py --devices 10000 --deployments 3
"""

# ruff: noqa: ASYNC220, PLR0915 -- one linear scenario script; its subprocesses start once
from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TypedDict, cast

import kubernetes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet.actors.agent.reporting import DeviceEntries, Entry
from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    DeviceId,
)
from fleet.devtools.simprofile import SIMULATED_INVENTORY
from fleet.devtools.simrollout import rollout_of
from fleet.devtools.tls import make_local_ca
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.identity import Authority
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.kv_publish import KvPublisher
from fleet.runtime.nats.permissions import operator_permissions
from fleet.runtime.nats.server import LocalNatsServer

# FLEET_BENCH_OPERATOR="path/to/wrapper.py" runs the operator under a profiler wrapper.
OPERATOR = os.environ.get("FLEET_BENCH_OPERATOR", "-m fleet.cli.operator").split()
ROOT = Path(__file__).resolve().parents[1]
GROUP, VERSION = "fleet.nationtech.io", "v1alpha1"
SCORE = {"type": "podman", "containers": [{"name": "web", "image": "localhost/busybox:test"}]}


def proc_stats(pid: int) -> tuple[float, float]:
    """(peak RSS in MiB, CPU seconds) of a live process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return hwm / 1024, (int(fields[11]) + int(fields[12])) / ticks


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Result(TypedDict):
    """What one run measured (seconds, MiB, and the load average before -> after)."""

    written: float
    correct: float
    rss_mib: float
    cpu_s: float
    cpu_after_create_s: float
    nats_rss_mib: float
    nats_cpu_s: float
    devices_cpu_s: float
    load: tuple[float, float]


async def run(args: argparse.Namespace) -> Result:
    n, d = args.devices, args.deployments
    store = tempfile.mkdtemp(prefix="bench-nats-")
    # --auth: JWT auth and TLS on nats-server, the operator on its own credential and TLS;
    # the simulated devices share one connection (with the operator's permissions, which
    # cover every device's keys), so that what is measured is the control plane's cost.
    authority = Authority.create() if args.auth else None
    ca = make_local_ca(Path(store) / "tls") if args.auth and not args.no_tls else None
    nats = LocalNatsServer(
        store_dir=Path(store) / "js",
        auth=authority.server_auth() if authority is not None else None,
        tls=ca.server if ca is not None else None,
    )
    nats.start()
    creds: list[str] = []
    secure: dict[str, Any] = {}
    if authority is not None:
        path = authority.issue(operator_permissions(), expires_in=None).write(
            Path(store) / "operator.creds"
        )
        tls = ["--nats-ca", str(ca.ca_cert)] if ca is not None else []
        creds = ["--nats-credentials", str(path), *tls]
        secure = {"credentials": path, "tls_ca": ca.ca_cert if ca is not None else None,
                  "inbox_prefix": operator_permissions().inbox_prefix}  # fmt: skip
    assert nats._proc is not None  # its pid, for /proc figures
    nats_pid = nats._proc.pid
    emulator = subprocess.Popen(
        [sys.executable, "-m", "fleet.devtools.kube_emulator"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert emulator.stdout is not None
    port = int(emulator.stdout.readline().split()[1])
    kube_url = f"http://127.0.0.1:{port}"
    bus = Bus(urls=[nats.url], name="bench-devices", **secure)
    await bus.start()
    await bus.wait_connected(timeout=10)
    await bus.ensure_buckets()
    devices = [DeviceId(f"dev-{i:06d}") for i in range(n)]
    now = datetime.datetime.now(tz=datetime.UTC)
    t = time.monotonic()
    publisher = KvPublisher(bus, in_flight=1024, timeout=30.0)
    runs = {dev: DeviceEntries(device_id=dev, instance_id="bench") for dev in devices}
    await publisher.write_many(BUCKET_DEVICE_INFO, [
        run.info(labels={"fleet": "bench"}, inventory=SIMULATED_INVENTORY,
                 agent_version="0.1.0", at=now)
        for run in runs.values()
    ])  # fmt: skip
    await publisher.write_many(
        BUCKET_DEVICE_HEARTBEAT, [run.heartbeat(at=now) for run in runs.values()]
    )
    print(f"devices published: {n} info + {n} heartbeats in {time.monotonic() - t:.2f}s")

    operator = subprocess.Popen(
        [sys.executable, *OPERATOR, "--metrics-address", "127.0.0.1:0", "--nats-url", nats.url,
         "--kube-url", kube_url, "--liveness-timeout", "600", "--log-level", args.log_level,
         "--device-qps", str(args.device_qps), *creds],
        cwd=ROOT,
    )  # fmt: skip
    # Devices react to their desired entries like agents: report Running for each revision.
    seen: dict[str, int] = {}
    queue: asyncio.Queue[KvEntry] = asyncio.Queue()

    arrivals: list[float] = []  # when the devices saw each desired entry
    reported: list[float] = []  # when a batch of their reports was acknowledged

    def on_entry(entry: KvEntry) -> None:
        if not entry.deleted:
            seen[entry.key] = entry.revision
            arrivals.append(time.monotonic())
            queue.put_nowait(entry)

    def report(entry: KvEntry) -> list[Entry]:
        """The simulated device's reports of ``entry``: every phase, or the last one."""
        rollout = rollout_of(entry)
        assert rollout is not None, entry.key  # the operator writes desired-state keys only
        steps = rollout.steps if args.phases else rollout.steps[-1:]
        run, at = runs[rollout.device], datetime.datetime.now(tz=datetime.UTC)
        return [
            e for s in steps
            if (e := run.report(deployment=rollout.deployment, phase=s.phase,
                                desired_revision=rollout.revision, message=s.message, at=at))
        ]  # fmt: skip

    async def reporter() -> None:  # the fleet's agents: report Running for what they see
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < 1000:
                batch.append(queue.get_nowait())
            # In order per key: each phase is its own write, as an agent's reports are.
            for step in zip(*(report(e) for e in batch), strict=True):
                await publisher.write_many(BUCKET_DEVICE_STATE, list(step))
            reported.append(time.monotonic())

    reporters = [asyncio.create_task(reporter()) for _ in range(4)]

    watch = bus.watch(BUCKET_DESIRED_STATE, ">", name="bench-desired", on_entry=on_entry)
    api = kubernetes.client.CustomObjectsApi(
        kubernetes.client.ApiClient(kubernetes.client.Configuration(host=kube_url))
    )
    await asyncio.sleep(args.settle)  # let the operator start and sync
    names = [f"bench-{i}" for i in range(d)]
    load_before = os.getloadavg()
    cpu0 = {"operator": proc_stats(operator.pid)[1], "nats": proc_stats(nats_pid)[1],
            "devices": self_cpu()}  # fmt: skip
    t0 = time.monotonic()
    for name in names:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "bench"},
            "spec": {"selector": {"matchLabels": {"fleet": "bench"}}, "score": SCORE},
        }  # fmt: skip
        await asyncio.to_thread(
            api.create_namespaced_custom_object, GROUP, VERSION, "bench", "deployments", body
        )
    written = correct = None
    deadline = t0 + args.timeout
    while time.monotonic() < deadline:
        messages, _last = await bus.kv.counts(BUCKET_DESIRED_STATE)
        if written is None and messages >= n * d:
            written = time.monotonic() - t0
            print(f"all {n * d} desired entries written: {written:.2f}s")
        if written is not None:
            aggs = []
            for name in names:
                # the client types a custom object as ``object``: it is the JSON dict
                obj = cast(
                    "dict[str, Any]",
                    await asyncio.to_thread(
                        api.get_namespaced_custom_object,
                        GROUP,
                        VERSION,
                        "bench",
                        "deployments",
                        name,
                    ),
                )
                aggs.append((obj.get("status") or {}).get("aggregate") or {})
            if all(a.get("running") == n and a.get("targeted") == n for a in aggs):
                correct = time.monotonic() - t0
                print(f"all {d} aggregates correct (running == targeted == {n}): {correct:.2f}s")
                break
        await asyncio.sleep(0.05)
    if arrivals:
        marks = [arrivals[min(len(arrivals) - 1, int(q * len(arrivals)))] - t0
                 for q in (0.0, 0.1, 0.5, 0.9, 1.0)]  # fmt: skip
        print("devices saw their entries (first, 10%, 50%, 90%, last): "
              + ", ".join(f"{x:.2f}s" for x in marks)
              + f"; their last report acknowledged at {max(reported) - t0:.2f}s")  # fmt: skip
    rss, cpu = proc_stats(operator.pid)
    nats_rss, nats_cpu = proc_stats(nats_pid)
    devices_cpu = self_cpu() - cpu0["devices"]
    load_after = os.getloadavg()
    print(
        f"operator peak RSS {rss:.0f} MiB, CPU {cpu:.1f} s ({cpu - cpu0['operator']:.1f} s "
        f"after the Deployments' creation); nats-server peak RSS {nats_rss:.0f} MiB, CPU "
        f"{nats_cpu - cpu0['nats']:.1f} s; simulated devices CPU {devices_cpu:.1f} s; "
        f"load average {load_before[0]:.1f} -> {load_after[0]:.1f}"
    )
    for task in reporters:
        task.cancel()
    await watch.stop()
    await publisher.close()
    operator.terminate()
    operator.wait(timeout=30)
    await bus.close()
    assert emulator.stdin is not None
    emulator.stdin.close()
    emulator.wait(timeout=30)
    nats.stop()
    return {
        "written": written or -1, "correct": correct or -1, "rss_mib": rss, "cpu_s": cpu,
        "cpu_after_create_s": cpu - cpu0["operator"], "nats_rss_mib": nats_rss,
        "nats_cpu_s": nats_cpu - cpu0["nats"], "devices_cpu_s": devices_cpu,
        "load": (load_before[0], load_after[0]),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--deployments", type=int, default=3)
    parser.add_argument(
        "--phases",
        action="store_true",
        help="report Pending, Pulling, Starting, Running (4 writes) per entry, as agents do",
    )
    parser.add_argument("--device-qps", type=float, default=50.0)
    parser.add_argument(
        "--auth", action="store_true",
        help="JWT auth and TLS on nats-server and the operator's connection (issue 12)",
    )  # fmt: skip
    parser.add_argument("--no-tls", action="store_true", help="with --auth: no TLS")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to let it sync")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--log-level", default="WARNING", help="the operator's log level")
    args = parser.parse_args()
    import uvloop

    result = uvloop.run(run(args))
    print(result)
    return 0 if result["correct"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
