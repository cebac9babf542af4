"""Fixtures for the pooled actor runtime: pools that are always shut down and checked."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from fleet.runtime.actorkit.pool import ActorPool, live_pools


def _shut(pool: ActorPool) -> None:
    left = pool.shutdown(timeout=5)
    assert left == [], f"actors left running in {pool!r}: {left}"
    assert pool.live_actors() == []
    assert pool not in live_pools()
    workers = [t.name for t in threading.enumerate() if t.name.startswith(f"{pool.name}-")]
    assert workers == [], f"worker threads still running: {workers}"


@pytest.fixture
def pool() -> Iterator[ActorPool]:
    """Four workers on two cores: real concurrency, and preemption between workers."""
    pool = ActorPool(workers=4, name="test-pool")
    yield pool
    _shut(pool)


@pytest.fixture
def pool1() -> Iterator[ActorPool]:
    """One worker: every actor shares one thread, so scheduling order is observable."""
    pool = ActorPool(workers=1, name="test-pool1", batch=8)
    yield pool
    _shut(pool)
