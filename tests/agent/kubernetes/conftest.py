"""The ``kubernetes`` runtime's world: the API emulator with its workload controller, a
real nats-server, and the conformance kit's bench (reports read from the wire)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from tests.agent.conformance.adapters import KubernetesAdapter
from tests.agent.conformance.kit import Bench
from tests.fixtures.nats import NatsServer


@pytest.fixture
def kube_adapter() -> Iterator[KubernetesAdapter]:
    adapter = KubernetesAdapter()
    yield adapter
    adapter.close()


@pytest.fixture
def bench(
    kube_adapter: KubernetesAdapter,
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
        adapter=kube_adapter,
    )
    b.listen()
    yield b
    b.close()
