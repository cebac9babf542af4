"""Run by test_bridge.py in its own process: gevent patches everything it imports.

Drives :class:`loadtest.bridge.AsyncioBridge` from greenlets against the nats-server at
argv[1] and prints one JSON object with what it saw. Bounded: every wait has a timeout.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402 -- after patch_all, as in locust
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402

from fleet.runtime.nats.bus import Bus  # noqa: E402
from loadtest.bridge import AsyncioBridge  # noqa: E402

native_id = monkey.get_original("threading", "get_native_id")


async def boom() -> None:
    raise ValueError("boom from the loop")


async def where() -> int:
    return int(native_id())


def main() -> None:
    url, greenlets, puts_each = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    bridge = AsyncioBridge(name="probe")
    bridge.start()
    bus = Bus(urls=[url], name="bridge-probe")

    async def up() -> None:
        await bus.start()
        await bus.wait_connected(timeout=10)
        await bus.ensure_buckets()

    bridge.call(up, timeout=20)
    out: dict[str, object] = {"loop_thread": bridge.call(where, timeout=5), "main": native_id()}

    ticks = 0
    stop_ticking = False

    def ticker() -> None:
        nonlocal ticks
        while not stop_ticking:
            ticks += 1
            gevent.sleep(0.001)

    revisions: list[int] = []

    def writer(i: int) -> None:
        for j in range(puts_each):
            rev = bridge.call(bus.put, "device-heartbeat", f"heartbeat.g{i}", b"%d" % j, timeout=20)
            revisions.append(rev)

    tick = gevent.spawn(ticker)
    started = time.perf_counter()
    gevent.joinall(
        [gevent.spawn(writer, i) for i in range(greenlets)], timeout=60, raise_error=True
    )
    out["seconds"] = time.perf_counter() - started
    stop_ticking = True
    tick.join(timeout=5)
    out["puts"] = len(revisions)
    out["unique_revisions"] = len(set(revisions))
    out["ticks"] = ticks

    try:
        bridge.call(boom, timeout=5)
        out["error"] = None
    except ValueError as exc:
        out["error"] = str(exc)

    ran_on: list[int] = []
    done = gevent.event.Event()

    def on_hub() -> None:
        ran_on.append(int(native_id()))
        done.set()

    bridge.call_soon(bridge.to_gevent, on_hub)
    done.wait(timeout=5)
    out["to_gevent_thread"] = ran_on[0] if ran_on else None

    bridge.call(bus.close, timeout=10)
    bridge.stop()
    out["running_after_stop"] = bridge.running
    print(json.dumps(out))


if __name__ == "__main__":
    main()
