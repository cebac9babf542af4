"""The kit's fixtures: ``subject`` is each runtime under test, ``bench`` the agent's world."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from tests.fixtures.nats import NatsServer

from .adapters import PodmanAdapter, SimulatedAdapter
from .kit import Bench, RuntimeAdapter


@pytest.fixture(
    params=[pytest.param("podman", marks=pytest.mark.podman), "simulated"],
)
def subject(request: pytest.FixtureRequest) -> RuntimeAdapter:
    if request.param == "podman":
        return PodmanAdapter(request.getfixturevalue("podman"))
    return SimulatedAdapter()


@pytest.fixture
def bench(
    subject: RuntimeAdapter,
    nats_server: NatsServer,
    bus: Bus,
    event_loop_thread: EventLoopThread,
    tmp_path: Path,
) -> Iterator[Bench]:
    b = Bench(
        bus=bus,
        loop=event_loop_thread,
        nats_url=nats_server.url,
        state_root=tmp_path,
        adapter=subject,
    )
    b.listen()
    yield b
    b.close()
