"""The ``kubernetes`` runtime's world: the API emulator with its workload controller, a
real nats-server, and the conformance kit's bench (reports read from the wire;
tests/agent/conftest.py)."""

from __future__ import annotations

import pytest

from tests.agent.conformance.adapters import KubernetesAdapter
from tests.agent.conformance.kit import RuntimeAdapter


@pytest.fixture
def subject(kube_adapter: KubernetesAdapter) -> RuntimeAdapter:
    return kube_adapter
