"""Actor scale benchmark: PooledActor (fleet.runtime.actorkit.pool) vs pykka.ThreadingActor.

    .venv/bin/python benchmarks/actors.py --actors 10000
    .venv/bin/python benchmarks/actors.py --actors 100000

For each actor type, in a fresh child process (so RSS figures do not mix):

* start: time to ``start()`` N actors, and until every ``on_start`` has run (ready);
* RSS: resident memory after all are ready minus before (VmRSS from /proc), per actor;
* tell: M messages told round-robin from one outside thread, until all are handled
  (ThreadingActor: at most --threading-messages, default 20,000: it is that slow);
* ask: sequential ``ask()`` round trips from an outside thread;
* stop: ``ActorIndex.stop_all`` over all N (ThreadingActor also with pykka's
  ``ActorRegistry.stop_all`` when ``--registry-stop`` is given).

ThreadingActor is skipped above ``--threading-cap`` actors (default 10,000): one OS
thread each; pykka's registry makes its stop O(n^2) (over 180 s at 100,000).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pykka

from fleet.runtime.actorkit.pool import ActorIndex, ActorPool, PooledActor


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class Counter:
    """Counts events from any thread; sets ``done`` when ``target`` is reached."""

    def __init__(self) -> None:
        self._count = itertools.count(1)
        self.target = 0
        self.done = threading.Event()

    def arm(self, target: int) -> None:
        self._count = itertools.count(1)
        self.target = target
        self.done.clear()

    def hit(self) -> None:
        if next(self._count) == self.target:  # itertools.count is atomic under the GIL
            self.done.set()


COUNTER = Counter()


class Handler:
    def on_start(self) -> None:
        COUNTER.hit()

    def on_receive(self, message: Any) -> Any:
        if message == "ping":
            return "pong"
        COUNTER.hit()
        return None


class Pooled(Handler, PooledActor):
    pass


class Threaded(Handler, pykka.ThreadingActor):
    pass


def run_one(
    kind: str, *, actors: int, messages: int, asks: int, workers: int, registry_stop: bool
) -> dict[str, Any]:
    pool = ActorPool(workers=workers, name="bench") if kind == "pooled" else None
    index: ActorIndex[int] = ActorIndex(name="bench")
    rss0 = rss_bytes()
    COUNTER.arm(actors)
    t0 = time.perf_counter()
    for i in range(actors):
        index.add(i, Pooled.start(pool=pool) if pool is not None else Threaded.start())
    t_started = time.perf_counter() - t0
    if not COUNTER.done.wait(600):
        raise RuntimeError("actors did not all start within 600 s")
    t_ready = time.perf_counter() - t0
    rss = rss_bytes() - rss0

    refs: list[pykka.ActorRef[Any] | None] = [index.get(i) for i in range(actors)]
    COUNTER.arm(messages)
    t0 = time.perf_counter()
    for n in range(messages):
        ref = refs[n % actors]
        assert ref is not None
        ref.tell(n)
    t_told = time.perf_counter() - t0
    if not COUNTER.done.wait(600):
        raise RuntimeError("messages not all handled within 600 s")
    t_handled = time.perf_counter() - t0

    t0 = time.perf_counter()
    for n in range(asks):
        ref = refs[(n * 7919) % actors]
        assert ref is not None
        ref.ask("ping", timeout=10)
    t_asks = time.perf_counter() - t0

    del refs, ref
    t0 = time.perf_counter()
    if registry_stop:
        pykka.ActorRegistry.stop_all(timeout=60)
        left = len(pykka.ActorRegistry.get_all())
    else:
        left = len(index.stop_all(timeout=600))
    t_stop = time.perf_counter() - t0
    if pool is not None:
        pool.shutdown(timeout=10)
    return {
        "kind": kind + (" (registry stop)" if registry_stop else ""),
        "actors": actors,
        "workers": workers if pool is not None else actors,
        "start_s": round(t_started, 3),
        "ready_s": round(t_ready, 3),
        "rss_mb": round(rss / 2**20, 1),
        "bytes_per_actor": rss // actors,
        "messages": messages,
        "tell_call_per_s": round(messages / t_told),
        "tell_handled_per_s": round(messages / t_handled),
        "asks": asks,
        "ask_per_s": round(asks / t_asks),
        "stop_s": round(t_stop, 3),
        "left_running": left,
    }


ROW = (
    "{kind:<26} {actors:>7} {workers:>7} {start_s:>8} {ready_s:>8} {rss_mb:>8} "
    "{bytes_per_actor:>7} {messages:>8} {tell_handled_per_s:>10} {tell_call_per_s:>10} "
    "{ask_per_s:>7} {stop_s:>8} {left_running:>4}"
)
HEADER = {
    "kind": "actor type", "actors": "actors", "workers": "threads", "start_s": "start s",
    "ready_s": "ready s", "rss_mb": "RSS MB", "bytes_per_actor": "B/actor", "messages": "messages",
    "tell_handled_per_s": "tell msg/s", "tell_call_per_s": "tell()/s", "ask_per_s": "ask/s",
    "stop_s": "stop s", "left_running": "left",
}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actors", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=0, help="default: max(200000, 2*actors)")
    parser.add_argument(
        "--threading-messages",
        type=int,
        default=20_000,
        help="ThreadingActor gets at most this many (it handles only hundreds per second)",
    )
    parser.add_argument("--asks", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=4, help="pool worker threads")
    parser.add_argument("--threading-cap", type=int, default=10_000)
    parser.add_argument(
        "--registry-stop",
        action="store_true",
        help="also time ThreadingActor stopped with pykka's ActorRegistry.stop_all",
    )
    parser.add_argument("--one", choices=["pooled", "threading"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    messages = args.messages or max(200_000, 2 * args.actors)
    if args.one:
        result = run_one(
            args.one,
            actors=args.actors,
            messages=messages,
            asks=args.asks,
            workers=args.workers,
            registry_stop=args.registry_stop,
        )
        print(json.dumps(result))
        return 0
    runs: list[list[str]] = [["pooled"]]
    if args.actors <= args.threading_cap:
        runs.append(["threading"])
        if args.registry_stop:
            runs.append(["threading", "--registry-stop"])
    pykka_version = importlib.metadata.version("pykka")
    print(f"python {sys.version.split()[0]}, pykka {pykka_version}, {os.cpu_count()} cores")
    print(ROW.format(**HEADER))
    for extra in runs:
        count = messages if extra[0] == "pooled" else min(messages, args.threading_messages)
        cmd = [sys.executable, __file__, "--one", *extra, "--actors", str(args.actors),
               "--messages", str(count), "--asks", str(args.asks),
               "--workers", str(args.workers)]  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=3600)
        print(ROW.format(**json.loads(out.stdout.strip().splitlines()[-1])), flush=True)
    if args.actors > args.threading_cap:
        print(f"ThreadingActor skipped: {args.actors} > --threading-cap {args.threading_cap} "
              "(one OS thread per actor)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
