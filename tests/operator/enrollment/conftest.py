"""Fixtures of the enrollment tests: see ``world.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.devtools.tls import LocalCa, make_local_ca
from fleet.runtime.aiokit.loop import EventLoopThread
from tests.fixtures.kube import KubeCluster

from .world import World


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCa:
    return make_local_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def world(
    tmp_path: Path, local_ca: LocalCa, kube: KubeCluster, event_loop_thread: EventLoopThread
) -> Iterator[World]:
    """A secure nats-server, the emulator, and an operator with enrollment on."""
    world = World(directory=tmp_path, ca=local_ca, kube=kube, loop=event_loop_thread)
    world.server.start()
    try:
        world.start_operator()
        yield world
    finally:
        try:
            world.stop_operators()
        finally:
            world.server.stop()
