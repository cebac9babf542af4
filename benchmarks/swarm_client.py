"""Measure the swarm's NATS clients: nats-py (``Bus``) against the lean one (``LiteBus``).

Run: .venv/bin/python benchmarks/swarm_client.py [--puts 50000] [--gets 20000]
     [--in-flight 256] [--rounds 3]

Starts its own nats-server (JetStream, a temp store, a free port) and, on one uvloop
loop in this process, drives acknowledged KV puts (~200-byte values over 1,000 keys)
and direct gets with ``in-flight`` workers for each client in turn, ``rounds`` times.
Prints the median puts/s, gets/s and this process's CPU-seconds per 1,000 operations
(``time.process_time``: the client's cost, not the server's), and the ratios.
Bounded: a fixed number of operations per round, each with the bus's 5 s timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet.contracts import BUCKET_DEVICE_STATE
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.server import LocalNatsServer
from loadtest.litebus import LiteBus

KEYS = 1000
VALUE = b'{"device_id":"bench-0001","deployment":"web","phase":"Running",' + b"x" * 136 + b"}"


async def drive(
    op: Callable[[int], Awaitable[object]], *, count: int, in_flight: int
) -> tuple[float, float]:
    """(operations/s, CPU-seconds per 1,000 operations) for ``count`` calls of ``op``."""
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            i = next_index
            next_index += 1
            await op(i)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return count / wall, cpu / count * 1000


async def bench(url: str, args: argparse.Namespace) -> dict[str, list[tuple[float, float]]]:
    bus = Bus(urls=[url], name="bench-nats-py")
    await bus.start()
    await bus.wait_connected(timeout=10)
    await bus.ensure_buckets()
    lite = LiteBus(urls=[url], name="bench-lite")
    await lite.start()
    await lite.wait_connected(timeout=10)
    await lite.ensure_buckets()
    clients: dict[str, Bus] = {"nats-py": bus, "lite": lite}  # a LiteBus is a Bus
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        for _ in range(args.rounds):
            for label, client in clients.items():

                async def put(i: int, client: Bus = client) -> object:
                    return await client.put(
                        BUCKET_DEVICE_STATE, f"state.bench-{i % KEYS}.web", VALUE
                    )

                async def get(i: int, client: Bus = client) -> object:
                    entry = await client.get(BUCKET_DEVICE_STATE, f"state.bench-{i % KEYS}.web")
                    if entry is None or entry.value != VALUE:
                        raise AssertionError(f"get of key {i % KEYS} returned {entry!r}")
                    return entry

                results.setdefault(f"{label} put", []).append(
                    await drive(put, count=args.puts, in_flight=args.in_flight)
                )
                results.setdefault(f"{label} get", []).append(
                    await drive(get, count=args.gets, in_flight=args.in_flight)
                )
    finally:
        await lite.close()
        await bus.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puts", type=int, default=50_000)
    parser.add_argument("--gets", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="swarm-client-bench-") as tmp:
        server = LocalNatsServer(store_dir=Path(tmp) / "jetstream")
        server.start()
        try:
            results = uvloop.run(bench(server.url, args))
        finally:
            server.stop()
    before, after = (", ".join(f"{x:.2f}" for x in la) for la in (load_before, os.getloadavg()))
    print(f"load average (1, 5, 15 min) before: {before}; after: {after}")
    print(f"{args.rounds} rounds, {args.in_flight} in flight, medians:")
    medians: dict[str, tuple[float, float]] = {}
    for name, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        medians[name] = (rate, cpu)
        count = args.puts if name.endswith("put") else args.gets
        print(f"  {name:12s} {rate:9.0f}/s   {cpu:6.3f} CPU-s per 1,000   ({count} per round)")
    for op in ("put", "get"):
        (nrate, ncpu), (lrate, lcpu) = medians[f"nats-py {op}"], medians[f"lite {op}"]
        print(
            f"  {op}: lite/nats-py throughput x{lrate / nrate:.2f}, CPU per op x{lcpu / ncpu:.2f}"
        )


if __name__ == "__main__":
    main()
