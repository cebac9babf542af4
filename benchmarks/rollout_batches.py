"""Progressive rollouts at fleet scale: how soon the next batch's entries follow a batch.

Issue 13's goal: at 10,000 devices, from a batch reaching its success threshold to the
next batch's desired entries written, under 2 s on this machine. Runs a real nats-server,
the Kubernetes API emulator (a separate process) and the real ``fleet-operator`` (a
separate process, its CPU its own), as ``operator_scale.py`` does; this process plays N
devices (one connection) that report only when the benchmark says, so that it decides
when a batch reaches its threshold.

Every write to desired-state is timed as nats-server relays it (a core subscription on
``$KV.desired-state.>``). The scenario: one Deployment ``web`` selecting every device, its
score (revision 1) written at once (no ``spec.rollout``) and reported Running; then, per
repeat,

* a good score with ``spec.rollout`` (default batches ``1%``, ``10%``, the rest;
  ``successThreshold`` 100, ``failureThreshold`` 1, ``autoRollback``, no pause): from the
  score's patch to the first batch's first and last entry; then, per batch, the batch's
  devices report Running all but the last needed one, a pause (``--quiet``), then that
  last one: from its report's ack to the next batch's first and last entry;
* a bad score: once the first batch has it, one of its devices reports Failed: from that
  report's ack to the first and last rollback entry (the stable score written back).

Prints each figure per repeat and their median, the operator's CPU-seconds in each
measured window, the CPU count and load average, how many entries were written to a
device that already had that value (none expected beyond the rollbacks'), and a verdict
against the 2 s goal. It fails (rather than time a wrong transition) when a batch's
entries are written before the batch before it reached its threshold. ``--spy PY_SPY``
samples the operator over each measured window.

    .venv/bin/python benchmarks/rollout_batches.py --devices 10000 --repeats 3
"""

# ruff: noqa: ASYNC220 -- a scenario script: its subprocesses start and stop once
from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, cast

import kubernetes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet.actors.agent.reporting import DeviceEntries
from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeviceId,
    Phase,
    convert_score,
    desired_state_key,
    encode_score,
)
from fleet.devtools.simprofile import SIMULATED_INVENTORY
from fleet.runtime.nats import subjects
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv_publish import KvPublisher
from fleet.runtime.nats.server import LocalNatsServer
from fleet.runtime.nats.transport import Message

# FLEET_BENCH_OPERATOR="path/to/wrapper.py" runs the operator under a profiler wrapper.
OPERATOR = os.environ.get("FLEET_BENCH_OPERATOR", "-m fleet.cli.operator").split()
ROOT = Path(__file__).resolve().parents[1]
GROUP, VERSION, NAMESPACE, NAME = "fleet.nationtech.io", "v1alpha1", "bench", "web"
DEPLOYMENT = DeploymentName(NAME)
GOAL_S = 2.0


def score(tag: str) -> dict[str, Any]:
    return {"type": "podman", "containers": [{"name": "web", "image": f"localhost/busybox:{tag}"}]}


def value_of(raw: dict[str, Any]) -> bytes:
    """The desired-state bytes the operator writes for ``raw`` (as its spec reader does)."""
    return encode_score(convert_score(raw))


class Spy:
    """py-spy on the operator over each measured window (``--spy``): a collapsed-stack
    file per window kind, samples holding the GIL only, appended over the repeats."""

    def __init__(self, exe: str | None, pid: int, out: Path) -> None:
        self.exe, self.pid, self.out = exe, pid, out
        self._proc: subprocess.Popen[bytes] | None = None
        self._label = ""

    async def start(self, label: str) -> None:
        if self.exe is None:
            return
        self._label = label
        path = self.out / f"{label}.{len(list(self.out.glob(label + '.*')))}.txt"
        self._proc = subprocess.Popen(
            [self.exe, "record", "--pid", str(self.pid), "--rate", "1000", "--gil",
             "--threads", "--nonblocking", "--format", "raw", "--output", str(path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        await asyncio.sleep(0.5)  # attached

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            await asyncio.to_thread(proc.wait, 30)


def operator_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Tap:
    """Every write to ``web``'s desired entries, timed as nats-server relays it."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, DeviceId, bytes | None]] = []  # (at, device, value)
        self._prefix = subjects.kv_prefix(BUCKET_DESIRED_STATE)

    def seen(self, msg: Message) -> None:
        at = time.monotonic()
        device, _, name = msg.subject.removeprefix(self._prefix).partition(".")
        if name == NAME:
            deleted = msg.headers is not None and subjects.KV_OPERATION in msg.headers
            self.writes.append((at, DeviceId(device), None if deleted else bytes(msg.data)))

    @property
    def mark(self) -> int:
        return len(self.writes)

    def early(self, *, start: int, end: int, value: bytes, given: Collection[DeviceId]) -> int:
        """Writes of ``value`` between marks ``start`` and ``end`` to devices not in
        ``given``: a batch started before its threshold was reached (none expected)."""
        return sum(1 for _, d, v in self.writes[start:end] if v == value and d not in given)

    def rewrites(self) -> int:
        """Writes of a value to a device that was written that value before."""
        counts = Counter((device, value) for _, device, value in self.writes)
        return sum(c - 1 for c in counts.values())

    async def wait(
        self,
        *,
        since: int,
        value: bytes,
        count: int,
        timeout: float,
        given: Collection[DeviceId] = (),
    ) -> tuple[float, float, list[DeviceId]]:
        """When the first and the ``count``-th device (not in ``given``) got ``value``
        after ``since``, and those devices."""
        deadline = time.monotonic() + timeout
        got: dict[DeviceId, float] = {}
        scanned = since
        while True:
            end = len(self.writes)
            for at, device, written in self.writes[scanned:end]:
                if written == value and device not in got and device not in given:
                    got[device] = at
            scanned = end
            if len(got) >= count:
                devices = list(got)[:count]
                return got[devices[0]], got[devices[-1]], devices
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(got)} of {count} devices written in {timeout:.0f}s")
            await asyncio.sleep(0.005)


class Devices:
    """N simulated devices on one connection: they report only when told."""

    def __init__(self, bus: Bus, devices: Sequence[DeviceId], timeout: float) -> None:
        self.bus, self.timeout = bus, timeout
        self.publisher = KvPublisher(bus, in_flight=1024, timeout=30.0)
        self.runs = {d: DeviceEntries(device_id=d, instance_id="bench") for d in devices}

    async def join(self) -> None:
        now = datetime.datetime.now(tz=datetime.UTC)
        runs = self.runs.values()
        await self._write(BUCKET_DEVICE_INFO, [
            r.info(labels={"fleet": "bench"}, inventory=SIMULATED_INVENTORY,
                   agent_version="0.1.0", at=now)
            for r in runs
        ])  # fmt: skip
        await self._write(BUCKET_DEVICE_HEARTBEAT, [r.heartbeat(at=now) for r in runs])

    async def revisions(self, devices: Sequence[DeviceId], value: bytes) -> dict[DeviceId, int]:
        """Each device's entry revision, once the bucket holds ``value`` for every one (a
        relayed write may not be stored yet)."""
        deadline = time.monotonic() + self.timeout
        while True:
            entries = await self.bus.snapshot(BUCKET_DESIRED_STATE)
            found = {}
            for device in devices:
                entry = entries.get(desired_state_key(device, DEPLOYMENT))
                if entry is not None and entry.value == value:
                    found[device] = entry.revision
            if len(found) == len(devices):
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} of {len(devices)} entries stored")
            await asyncio.sleep(0.05)

    async def report(
        self, revisions: dict[DeviceId, int], phase: Phase, message: str | None = None
    ) -> float:
        """Report ``phase`` for these entries; when the last ack came."""
        now = datetime.datetime.now(tz=datetime.UTC)
        await self._write(BUCKET_DEVICE_STATE, [
            self.runs[d].report(deployment=DEPLOYMENT, phase=phase, desired_revision=rev,
                                message=message, at=now)
            for d, rev in revisions.items()
        ])  # fmt: skip
        return time.monotonic()

    async def _write(self, bucket: str, entries: Sequence[tuple[str, bytes] | None]) -> None:
        items = [e for e in entries if e is not None]
        results = await self.publisher.write_many(bucket, items)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(items)} writes to {bucket}: {failed[0]}")


class Api:
    """The Deployment and its revisions, through the kubernetes client (in a thread)."""

    def __init__(self, url: str) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(
            kubernetes.client.ApiClient(kubernetes.client.Configuration(host=url))
        )

    async def create(self, body: dict[str, Any]) -> None:
        await asyncio.to_thread(
            self.custom.create_namespaced_custom_object, GROUP, VERSION, NAMESPACE,
            "deployments", body,
        )  # fmt: skip

    async def patch_spec(self, spec: dict[str, Any]) -> None:
        await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object, GROUP, VERSION, NAMESPACE,
            "deployments", NAME, {"spec": spec},
        )  # fmt: skip

    async def status(self) -> dict[str, Any]:
        obj = cast(  # the client types a custom object as ``object``: it is the JSON dict
            "dict[str, Any]",
            await asyncio.to_thread(
                self.custom.get_namespaced_custom_object, GROUP, VERSION, NAMESPACE,
                "deployments", NAME,
            ),
        )  # fmt: skip
        return cast("dict[str, Any]", obj.get("status") or {})

    async def outcomes(self) -> dict[int, str | None]:
        listing = cast(
            "dict[str, Any]",
            await asyncio.to_thread(
                self.custom.list_namespaced_custom_object, GROUP, VERSION, NAMESPACE,
                "deploymentrevisions",
            ),
        )  # fmt: skip
        return {
            item["spec"]["revision"]: (item.get("status") or {}).get("outcome")
            for item in listing["items"]
        }

    async def settled(self, *, devices: int, outcome: str, timeout: float) -> None:
        """Every device counted running, and the newest revision journaled ``outcome``."""
        deadline = time.monotonic() + timeout
        while True:
            aggregate = (await self.status()).get("aggregate") or {}
            outcomes = await self.outcomes()
            newest = outcomes[max(outcomes)] if outcomes else None
            if aggregate.get("running") == devices and newest == outcome:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"not settled: aggregate {aggregate}, revisions {outcomes}")
            await asyncio.sleep(0.1)


def batch_sizes(n: int, batches: Sequence[str]) -> list[int]:
    """Each batch's device count (a percentage of n, rounded up), the rest last."""
    sizes: list[int] = []
    for raw in batches:
        size = math.ceil(int(raw[:-1]) * n / 100) if raw.endswith("%") else int(raw)
        sizes.append(min(size, n - sum(sizes)))
    return [*sizes, n - sum(sizes)]


class Rollouts:
    """The measured scenario, on a running operator whose devices run revision 1."""

    def __init__(
        self, args: argparse.Namespace, *, api: Api, tap: Tap, devices: Devices, spy: Spy
    ) -> None:
        self.args, self.api, self.tap, self.devices, self.spy = args, api, tap, devices, spy
        self.sizes = batch_sizes(args.devices, args.batches)
        self.figures: dict[str, list[float]] = defaultdict(list)

    def cpu(self) -> float:
        return operator_cpu(self.spy.pid)

    async def wait(
        self, since: int, value: bytes, count: int, given: Collection[DeviceId] = ()
    ) -> tuple[float, float, list[DeviceId]]:
        try:
            return await self.tap.wait(since=since, value=value, count=count,
                                       timeout=self.args.timeout, given=given)  # fmt: skip
        except TimeoutError as exc:
            rollout = (await self.api.status()).get("rollout")
            raise TimeoutError(f"{exc}; the Deployment's .status.rollout: {rollout}") from None

    async def first(self) -> None:
        """Revision 1 everywhere, at once (no rollout), reported Running."""
        args, tap, devices = self.args, self.tap, self.devices
        value, mark = value_of(score("r0")), tap.mark
        await self.api.create({
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {"selector": {"matchLabels": {"fleet": "bench"}}, "score": score("r0")},
        })  # fmt: skip
        _, _, everyone = await self.wait(mark, value, args.devices)
        await devices.report(await devices.revisions(everyone, value), Phase.RUNNING)
        await self.api.settled(devices=args.devices, outcome="Complete", timeout=args.timeout)

    async def good(self, repeat: int, policy: dict[str, Any] | None) -> bytes:
        """A good score, batch by batch; its value."""
        args, figures, sizes, devices = self.args, self.figures, self.sizes, self.devices
        new = value_of(score(f"r{repeat}"))
        spec: dict[str, Any] = {"score": score(f"r{repeat}")}
        if policy is not None:
            spec["rollout"] = policy
        await self.spy.start("change")
        mark, cpu, t = self.tap.mark, self.cpu(), time.monotonic()
        start = mark
        await self.api.patch_spec(spec)
        first, last, batch = await self.wait(mark, new, sizes[0])
        await self.spy.stop()
        reached = set(batch)
        figures["change -> batch 1 first entry"].append(first - t)
        figures["change -> batch 1 last entry"].append(last - t)
        figures["operator CPU, change -> batch 1"].append(self.cpu() - cpu)
        for index, size in enumerate(sizes[1:], start=1):
            order = list((await devices.revisions(batch, new)).items())
            needed = math.ceil(args.success_threshold * len(batch) / 100)
            await devices.report(dict(order[: needed - 1]), Phase.RUNNING)
            await asyncio.sleep(args.quiet)  # the operator has taken those in
            where = f"batch {index} -> {index + 1}"
            await self.spy.start(f"batch{index}-{index + 1}")
            mark, cpu = self.tap.mark, self.cpu()
            acked = await devices.report(dict(order[needed - 1 : needed]), Phase.RUNNING)
            early = self.tap.early(start=start, end=mark, value=new, given=reached)
            if early:
                raise RuntimeError(
                    f"batch {index + 1} started before batch {index} reached its threshold: "
                    f"{early} devices got revision {repeat}'s score after {needed - 1} of the "
                    f"{needed} reports needed"
                )
            first, last, following = await self.wait(mark, new, size, given=reached)
            reached.update(following)
            await self.spy.stop()
            figures[f"{where} first entry"].append(first - acked)
            figures[f"{where} last entry"].append(last - acked)
            figures[f"operator CPU, {where}"].append(self.cpu() - cpu)
            await devices.report(dict(order[needed:]), Phase.RUNNING)
            batch = following
        await devices.report(await devices.revisions(batch, new), Phase.RUNNING)
        await self.api.settled(devices=args.devices, outcome="Complete", timeout=args.timeout)
        return new

    async def bad(self, repeat: int, stable: bytes) -> None:
        """A bad score: the canary fails, the rollout halts and rolls back to ``stable``."""
        args, figures, sizes, devices = self.args, self.figures, self.sizes, self.devices
        bad = value_of(score(f"bad{repeat}"))
        mark, t = self.tap.mark, time.monotonic()
        start = mark
        await self.api.patch_spec({"score": score(f"bad{repeat}")})
        _, last, batch = await self.wait(mark, bad, sizes[0])
        figures["bad change -> batch 1 last entry"].append(last - t)
        revisions = await devices.revisions(batch[:1], bad)
        await asyncio.sleep(args.quiet)
        await self.spy.start("rollback")
        mark, cpu = self.tap.mark, self.cpu()
        acked = await devices.report(
            revisions, Phase.FAILED, f"pulling localhost/busybox:bad{repeat}: not found"
        )
        first, last, _ = await self.wait(mark, stable, sizes[0])
        await self.spy.stop()
        early = self.tap.early(start=start, end=self.tap.mark, value=bad, given=batch)
        if early:
            raise RuntimeError(
                f"batch 2 got the failing score though no device of batch 1 reported Running: "
                f"{early} devices outside batch 1 were written revision bad{repeat}'s score"
            )
        figures["Failed -> first rollback entry"].append(first - acked)
        figures["Failed -> last rollback entry"].append(last - acked)
        figures["operator CPU, Failed -> rollback"].append(self.cpu() - cpu)
        await devices.report(await devices.revisions(batch, stable), Phase.RUNNING)
        await self.api.settled(devices=args.devices, outcome="RolledBack", timeout=args.timeout)


async def run(args: argparse.Namespace) -> dict[str, list[float]]:
    n = args.devices
    policy = {
        "batches": [{"size": b} for b in args.batches],
        "successThreshold": args.success_threshold,
        "failureThreshold": 1,
        "autoRollback": True,
    }
    store = tempfile.mkdtemp(prefix="bench-nats-")
    nats = LocalNatsServer(store_dir=Path(store) / "js")
    nats.start()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "fleet.devtools.kube_emulator"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    operator: subprocess.Popen[bytes] | None = None
    bus = Bus(urls=[nats.url], name="bench-devices")
    try:
        assert emulator.stdout is not None
        kube_url = f"http://127.0.0.1:{int(emulator.stdout.readline().split()[1])}"
        api = Api(kube_url)
        await bus.start()
        await bus.wait_connected(timeout=10)
        await bus.ensure_buckets()
        tap = Tap()
        await bus.transport.subscribe(subjects.kv_prefix(BUCKET_DESIRED_STATE) + ">", tap.seen)
        await bus.transport.flush(timeout=10)
        devices = Devices(bus, [DeviceId(f"dev-{i:06d}") for i in range(n)], args.timeout)
        await devices.join()
        operator = subprocess.Popen(
            [sys.executable, *OPERATOR, "--metrics-address", "127.0.0.1:0",
             "--nats-url", nats.url, "--kube-url", kube_url,
             "--liveness-timeout", "600", "--log-level", args.log_level],
            cwd=ROOT,
        )  # fmt: skip
        spy = Spy(args.spy, operator.pid, Path(args.spy_dir))
        await asyncio.sleep(args.settle)  # let the operator start and sync

        rollouts = Rollouts(args, api=api, tap=tap, devices=devices, spy=spy)
        await rollouts.first()
        print(f"{n} devices run revision 1; batches {rollouts.sizes} "
              f"(successThreshold {args.success_threshold}%)")  # fmt: skip
        load_before = os.getloadavg()
        for repeat in range(1, args.repeats + 1):
            stable = await rollouts.good(repeat, policy if repeat == 1 else None)
            await rollouts.bad(repeat, stable)
            print(f"repeat {repeat}/{args.repeats} done")
        load_after = os.getloadavg()
        figures = rollouts.figures
        figures["load average before, after"] = [load_before[0], load_after[0]]
        figures["operator CPU, whole run"] = [operator_cpu(operator.pid)]
        # A rollback writes the stable score again to the first batch: those are expected.
        figures["entries written twice"] = [tap.rewrites() - args.repeats * rollouts.sizes[0]]
        await devices.publisher.close()
        return figures
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait(timeout=30)
        await bus.close()
        assert emulator.stdin is not None
        emulator.stdin.close()
        emulator.wait(timeout=30)
        nats.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3, help="good + bad rollouts")
    parser.add_argument(
        "--batches", default="1%,10%", type=lambda s: s.split(","),
        help="spec.rollout.batches sizes, the rest implicit (default: 1%%,10%%)",
    )  # fmt: skip
    parser.add_argument("--success-threshold", type=int, default=100, help="percent")
    parser.add_argument(
        "--quiet", type=float, default=1.0,
        help="seconds between the reports before the last needed one and that one",
    )  # fmt: skip
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to let it sync")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per wait")
    parser.add_argument("--log-level", default="WARNING", help="the operator's log level")
    parser.add_argument(
        "--spy", metavar="PY_SPY", default=None,
        help="py-spy executable: sample the operator (GIL holders) over each measured window",
    )  # fmt: skip
    parser.add_argument("--spy-dir", default="rollout-profiles", help="where --spy writes")
    args = parser.parse_args()
    if args.spy is not None:
        Path(args.spy_dir).mkdir(parents=True, exist_ok=True)
    import uvloop

    figures = uvloop.run(run(args))
    load = figures.pop("load average before, after")
    total = figures.pop("operator CPU, whole run")[0]
    twice = figures.pop("entries written twice")[0]
    cpus = os.cpu_count()
    print(
        f"\n{args.devices} devices, batches {','.join(args.batches)} + rest, "
        f"successThreshold {args.success_threshold}%; {cpus} CPUs; load average "
        f"{load[0]:.1f} -> {load[1]:.1f}; operator CPU {total:.1f} s in all"
    )
    for what, values in figures.items():
        shown = ", ".join(f"{v:.3f}" for v in values)
        print(f"  {what:36s} median {statistics.median(values):6.3f} s   ({shown})")
    print(f"  entries written twice (beyond the rollbacks' own): {twice:.0f}")
    transitions = {k: v for k, v in figures.items() if k.startswith("batch") and "last" in k}
    worst = max(max(v) for v in transitions.values())
    medians = max(statistics.median(v) for v in transitions.values())
    met = medians < GOAL_S
    print(
        f"verdict: batch threshold -> next batch's last entry: median at most {medians:.2f} s, "
        f"worst {worst:.2f} s: goal (under {GOAL_S:g} s) {'MET' if met else 'NOT MET'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
