"""The gevent <-> asyncio bridge against a real nats-server, in a gevent-patched process.

The probe runs in a subprocess: gevent's ``patch_all`` must never touch pytest's own
process (it would change every other test).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.fixtures.nats import NatsServer

REPO = Path(__file__).resolve().parents[3]
PROBE = Path(__file__).with_name("bridge_probe.py")


def run_probe(url: str, *, greenlets: int, puts_each: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(PROBE), url, str(greenlets), str(puts_each)],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_greenlets_put_through_a_real_thread_while_the_hub_keeps_running(
    nats_server: NatsServer,
) -> None:
    out = run_probe(nats_server.url, greenlets=50, puts_each=40)

    assert out["puts"] == 2000
    assert out["unique_revisions"] == 2000  # every put acknowledged by the server, once
    assert out["loop_thread"] != out["main"]  # a real OS thread, not a greenlet
    assert out["ticks"] > 10  # other greenlets ran while the puts were in flight


def test_errors_reach_the_waiting_greenlet_and_callbacks_run_on_the_hub(
    nats_server: NatsServer,
) -> None:
    out = run_probe(nats_server.url, greenlets=1, puts_each=1)

    assert out["error"] == "boom from the loop"
    assert out["to_gevent_thread"] == out["main"]
    assert out["running_after_stop"] is False


LONE_WAITER = """
import asyncio
from gevent import monkey
monkey.patch_all()
from loadtest.bridge import AsyncioBridge

async def slow():
    await asyncio.sleep(0.3)  # the outcome comes back while nothing else runs on the hub
    return 42

bridge = AsyncioBridge(name="lone")
bridge.start()
try:
    print(bridge.submit(slow).get(), bridge.call(slow, timeout=5))
finally:
    bridge.stop()
"""


def test_a_lone_greenlet_waits_for_a_slow_outcome_instead_of_loop_exit() -> None:
    """Without a live watcher on the hub, gevent raised LoopExit ("would block forever")
    for a greenlet alone waiting on an outcome sent back with run_callback_threadsafe."""
    done = subprocess.run(
        [sys.executable, "-c", LONE_WAITER], capture_output=True, text=True, timeout=60,
        cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["42", "42"]
