"""Suite-wide guards: a test fails if it leaves live actors (pooled too) or threads behind,
or if an actor died during it (:mod:`fleet.runtime.actorkit.failfast`) and the test did not say it
expects that with ``@pytest.mark.actor_death``. And operator processes get a metrics port of
their own (``FLEET_METRICS_ADDRESS``, below)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pykka
import pytest

from fleet.runtime.actorkit import failfast
from fleet.runtime.actorkit.pool import live_pools

# A fleet-operator a test starts as a process serves /metrics on a port the system picks,
# on 127.0.0.1: its default, 0.0.0.0:8080, is one port for the whole machine, and two
# operators at once (or anything else there) would collide. Children inherit this.
os.environ.setdefault("FLEET_METRICS_ADDRESS", "127.0.0.1:0")


def live_actors() -> list[pykka.ActorRef[pykka.Actor]]:
    """Actors in pykka's registry and pooled actors (which skip the registry)."""
    pooled = [ref for pool in live_pools() for ref in pool.live_actors()]
    return [*pykka.ActorRegistry.get_all(), *pooled]


@pytest.fixture(autouse=True)
def no_leaked_actors_or_threads(request: pytest.FixtureRequest) -> Iterator[None]:
    """Requested first (autouse), so torn down last: after every other fixture."""
    before = {t.ident for t in threading.enumerate()}
    failfast.clear_deaths()
    yield
    died = failfast.deaths()
    failfast.clear_deaths()
    if died and request.node.get_closest_marker("actor_death") is None:
        pytest.fail(f"an actor died during the test: {died}")
    deadline = time.monotonic() + 3.0
    while True:
        actors = live_actors()
        threads = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
        if not actors and not threads:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
    for pool in live_pools():
        pool.shutdown(timeout=5)
    problems = []
    if actors:
        problems.append(f"live actors left behind: {actors}")
    if threads:
        problems.append(f"threads left behind: {[t.name for t in threads]}")
    pytest.fail("; ".join(problems))
