"""``fleetctl logs`` and ``fleetctl describe device``: asking one device, now.

Why it exists: a person reading a failing container's output, or what a device says it
runs, should not need SSH to the device. Both ask the device's agent over NATS
(:mod:`fleet.runtime.nats.device_ask`); the agent answers within its bounds. A device
that does not answer gets one line, with what the buckets say of it: "device pi-7 did
not answer within 5s (last heartbeat 3m ago: offline?)", and exit code 1.

What it must never do: write to a bucket, wait past ``--timeout`` for an answer, or show
bytes from a device that did not decode.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from typing import Any, TextIO

import msgspec

from fleet.contracts import (
    BUCKET_DEVICE_HEARTBEAT,
    DeviceDescription,
    DeviceId,
    LogsChunk,
    LogsRequest,
    decode_heartbeat,
    device_heartbeat_key,
    encode_answer,
)
from fleet.contracts.ondemand import DEFAULT_LOG_TAIL, MAX_LOG_TAIL
from fleet.errors import BusError, ContractError, InvalidName
from fleet.runtime.nats import device_ask
from fleet.runtime.nats.device_ask import NoAnswer

from . import render
from .connect import Buckets, Unreachable

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "logs", parents=[common], help="a container's output, from its device (-f: follow)"
    )
    p.add_argument("device", metavar="DEVICE")
    p.add_argument("deployment", metavar="DEPLOYMENT")
    p.add_argument("container", metavar="CONTAINER", nargs="?",
                   help="its name in the score (needed when there are several)")  # fmt: skip
    p.add_argument("--tail", type=int, default=DEFAULT_LOG_TAIL, metavar="N",
                   help=f"the last N lines (default {DEFAULT_LOG_TAIL}, at most "
                   f"{MAX_LOG_TAIL})")  # fmt: skip
    p.add_argument("-f", "--follow", action="store_true",
                   help="then what it writes next, until Ctrl-C or it stops")  # fmt: skip
    p = sub.add_parser("describe", parents=[common], help="describe a device, as it says now")
    p.add_argument("what", choices=("device",), metavar="device")
    p.add_argument("device", metavar="DEVICE")
    for name in ("logs", "describe"):
        sub.choices[name].add_argument(
            "--timeout", type=float, default=5.0, metavar="SECONDS",
            help="how long to wait for the device to answer (default: 5)",
        )  # fmt: skip


def _device(args: argparse.Namespace) -> DeviceId:
    try:
        return DeviceId.try_new(args.device)
    except InvalidName as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def logs(buckets: Buckets, args: argparse.Namespace, out: TextIO) -> int:
    try:
        device = _device(args)
        request = LogsRequest(
            deployment=args.deployment, container=args.container,
            tail=max(0, min(args.tail, MAX_LOG_TAIL)), follow=args.follow,
        )  # fmt: skip
    except (argparse.ArgumentTypeError, ContractError) as exc:
        print(f"fleetctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.tail > MAX_LOG_TAIL:
        print(f"fleetctl: --tail {args.tail}: at most {MAX_LOG_TAIL} lines; showing "
              f"{MAX_LOG_TAIL}", file=sys.stderr)  # fmt: skip
    result: dict[str, int] = {}

    async def read() -> None:
        async for chunk in device_ask.logs(
            buckets.transport, device, request, timeout=args.timeout
        ):
            result["code"] = _show(chunk, out)

    try:
        buckets.run(read(), timeout=None)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except NoAnswer:
        return _no_answer(buckets, device, args)
    except BusError as exc:
        print(f"fleetctl: device {device}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return result.get("code", 0)


def _show(chunk: LogsChunk, out: TextIO) -> int:
    if chunk.skipped:
        print(f"fleetctl: ... {chunk.skipped} lines skipped ...", file=sys.stderr, flush=True)
    for line in chunk.lines:
        print(line, file=out)
    out.flush()
    if chunk.error is not None:
        print(f"fleetctl: device {chunk.device_id}: {chunk.error.message}", file=sys.stderr)
        return 0 if chunk.error.code == "ended" else EXIT_FAILED
    return 0


def describe(buckets: Buckets, args: argparse.Namespace, out: TextIO) -> int:
    try:
        device = _device(args)
    except argparse.ArgumentTypeError as exc:
        print(f"fleetctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        described = buckets.run(
            device_ask.describe(buckets.transport, device, timeout=args.timeout),
            timeout=args.timeout + 10,
        )
    except (NoAnswer, TimeoutError):
        return _no_answer(buckets, device, args)
    except BusError as exc:
        print(f"fleetctl: device {device}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if described.error is not None and described.error.code != "unavailable":
        print(f"fleetctl: device {device}: {described.error.message}", file=sys.stderr)
        return EXIT_FAILED
    if args.output == "json":
        print(render.as_json(_plain(described)), file=out)
    else:
        print(describe_text(described), file=out)
    if described.error is not None:
        print(f"fleetctl: device {device}: {described.error.message}", file=sys.stderr)
    return 0


def _plain(described: DeviceDescription) -> Any:
    return msgspec.json.decode(encode_answer(described))  # as it came on the wire


def describe_text(d: DeviceDescription) -> str:
    """``kubectl describe``-like text."""
    lines = [f"Device:         {d.device_id}", f"Labels:         {render.labels(d.labels)}"]
    if d.inventory is not None:
        inv = d.inventory
        lines += [
            f"Inventory:      {inv.hostname}, {inv.os} {inv.arch}, kernel {inv.kernel}, "
            f"{inv.cpus} CPUs, {inv.memory_bytes // (1024 * 1024)} MiB",
            f"Runtime:        {inv.runtime_name} {inv.runtime_version}",
        ]
    lines += [
        f"Agent:          {d.agent_version or '-'} (instance {d.instance_id or '-'})",
        f"As of:          {d.at.isoformat().replace('+00:00', 'Z')}",
        "Deployments:" if d.deployments else "Deployments:    (none)",
    ]
    for dep in d.deployments:
        revision = "-" if dep.desired_revision is None else str(dep.desired_revision)
        if dep.running_revision is not None:
            revision += f" (running {dep.running_revision})"
        phase = dep.phase.value if dep.phase is not None else "(no report yet)"
        lines.append(f"  {dep.deployment}:  {phase}, revision {revision}")
        if dep.message:
            lines.append(f"    Message:      {dep.message}")
        for c in dep.containers:
            code = "" if c.exit_code in (None, 0) else f", exit code {c.exit_code}"
            lines.append(f"    Container {c.name}: {c.state}{code}"
                         f"{', started ' + c.started_at if c.started_at else ''}")  # fmt: skip
        if dep.last_failure:
            when = (
                dep.last_failure_at.isoformat().replace("+00:00", "Z")
                if dep.last_failure_at
                else ""
            )
            lines.append(f"    Last failure: {dep.last_failure} ({when})")
    if d.more:
        lines.append(f"  ... and {d.more} more deployments")
    return "\n".join(lines)


def _no_answer(buckets: Buckets, device: DeviceId, args: argparse.Namespace) -> int:
    """One line: nobody listens on the device's subject, or it stayed silent; either
    way, what its last heartbeat says."""
    print(f"fleetctl: device {device} did not answer within {args.timeout:g}s "
          f"({_last_heard(buckets, device, args.liveness_timeout)})",
          file=sys.stderr)  # fmt: skip
    return EXIT_FAILED


def _last_heard(buckets: Buckets, device: DeviceId, liveness_timeout: float) -> str:
    try:
        entries = buckets.read(BUCKET_DEVICE_HEARTBEAT, device_heartbeat_key(device))
    except Unreachable:
        return "its last heartbeat unknown: offline?"
    entry = entries.get(device_heartbeat_key(device))
    if entry is None:
        return "no heartbeat ever seen from it: is the device id right?"
    try:
        beat = decode_heartbeat(entry.value)
    except ContractError:
        return "its last heartbeat unreadable: offline?"
    seconds = (datetime.datetime.now(datetime.UTC) - beat.at).total_seconds()
    if seconds <= liveness_timeout:  # alive, yet it does not answer
        return (f"last heartbeat {render.age(seconds)}: online, but its agent does not answer; "
                "an agent older than this fleetctl?")  # fmt: skip
    return f"last heartbeat {render.age(seconds)}: offline?"
