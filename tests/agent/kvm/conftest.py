"""The ``kvm`` runtime's world: the system libvirtd with the tiny guest of
``tests/fixtures/kvm.py``, a real nats-server, and the conformance kit's bench (reports
read from the wire). Every test here is marked ``kvm``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from tests.agent.conformance.adapters import KvmAdapter
from tests.agent.conformance.kit import Bench
from tests.fixtures.kvm import URI, Guest
from tests.fixtures.nats import NatsServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.kvm)


@pytest.fixture
def kvm_adapter(kvm_guest: Guest) -> Iterator[KvmAdapter]:
    adapter = KvmAdapter(kvm_guest, uri=URI)
    yield adapter
    adapter.close()


@pytest.fixture
def bench(
    kvm_adapter: KvmAdapter,
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
        adapter=kvm_adapter,
    )
    b.listen()
    yield b
    b.close()
