"""Fixtures of the enrollment tests: see ``world.py``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.actors.operator.shards import Shard
from fleet.devtools.tls import LocalCa, make_local_ca
from fleet.runtime.aiokit.loop import EventLoopThread
from tests.fixtures.kube import KubeCluster

from .world import World


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCa:
    return make_local_ca(tmp_path_factory.mktemp("ca"))


@contextlib.contextmanager
def running(
    tmp_path: Path, local_ca: LocalCa, kube: KubeCluster, loop: EventLoopThread, *, shards: int = 1
) -> Iterator[World]:
    """A secure nats-server, the emulator, and ``shards`` operators with enrollment on (one
    operator; or shard 0..N-1 of N)."""
    world = World(directory=tmp_path, ca=local_ca, kube=kube, loop=loop)
    world.server.start()
    try:
        if shards == 1:
            world.start_operator()
        for index in range(shards if shards > 1 else 0):
            world.start_operator(shard=Shard(count=shards, index=index))
        yield world
    finally:
        try:
            world.stop_operators()
        finally:
            world.server.stop()


@pytest.fixture
def world(
    tmp_path: Path, local_ca: LocalCa, kube: KubeCluster, event_loop_thread: EventLoopThread
) -> Iterator[World]:
    """A secure nats-server, the emulator, and an operator with enrollment on."""
    with running(tmp_path, local_ca, kube, event_loop_thread) as world:
        yield world
