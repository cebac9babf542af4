"""The kit's fixtures: ``subject`` is each runtime under test, ``bench`` the agent's world."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from tests.fixtures.kvm import URI as LIBVIRT_URI
from tests.fixtures.kvm import Guest
from tests.fixtures.nats import NatsServer

from .adapters import KubernetesAdapter, KvmAdapter, PodmanAdapter, SimulatedAdapter
from .kit import Bench, RuntimeAdapter


@pytest.fixture
def kube_adapter() -> Iterator[KubernetesAdapter]:
    """The API emulator with its workload controller (the ``kubernetes`` subject's world)."""
    adapter = KubernetesAdapter()
    yield adapter
    adapter.close()


@pytest.fixture(
    params=[
        pytest.param("podman", marks=pytest.mark.podman),
        "simulated",
        "kubernetes",
        pytest.param("kvm", marks=pytest.mark.kvm),
    ],
)
def subject(request: pytest.FixtureRequest) -> RuntimeAdapter:
    if request.param == "podman":
        return PodmanAdapter(request.getfixturevalue("podman"))
    if request.param == "kubernetes":
        kube: KubernetesAdapter = request.getfixturevalue("kube_adapter")
        return kube
    if request.param == "kvm":
        kvm: KvmAdapter = request.getfixturevalue("kvm_adapter")
        return kvm
    return SimulatedAdapter()


@pytest.fixture
def kvm_adapter(kvm_guest: Guest) -> Iterator[KvmAdapter]:
    adapter = KvmAdapter(kvm_guest, uri=LIBVIRT_URI)
    yield adapter
    adapter.close()


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
