"""The ``kvm`` runtime's world: the system libvirtd with the tiny guest of
``tests/fixtures/kvm.py``, a real nats-server, and the conformance kit's bench (reports
read from the wire; tests/agent/conftest.py). Every test here is marked ``kvm``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.conformance.adapters import KvmAdapter
from tests.agent.conformance.kit import RuntimeAdapter


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.kvm)


@pytest.fixture
def subject(kvm_adapter: KvmAdapter) -> RuntimeAdapter:
    return kvm_adapter
