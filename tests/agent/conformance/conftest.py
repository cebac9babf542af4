"""The kit's ``subject``: each runtime under test (``bench``, the agent's world around it,
and the adapters' fixtures are tests/agent/conftest.py's)."""

from __future__ import annotations

import pytest

from .adapters import KubernetesAdapter, KvmAdapter, PodmanAdapter, SimulatedAdapter
from .kit import RuntimeAdapter


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
