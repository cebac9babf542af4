"""Issue 14 workload tests: volumes the tests made are removed after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.agent.conftest import AgentWorld
from tests.agent.process.conftest import agents
from tests.fixtures.podman import PodmanEnv

__all__ = ["agents"]


@pytest.fixture(autouse=True)
def _remove_volumes(podman: PodmanEnv) -> Iterator[None]:
    yield
    podman.podman("volume", "rm", "-a", "-f", check=False)


def volumes(world: AgentWorld) -> dict[str, dict[str, str]]:
    """This device's volumes (name -> labels)."""
    import msgspec

    out = world.podman.podman(
        "volume",
        "ls",
        "--format",
        "json",
        "--filter",
        f"label=fleet.nationtech.io/device={world.device}",
    ).stdout
    found: list[dict[str, object]] = msgspec.json.decode(out or "[]")
    return {str(v["Name"]): dict(v.get("Labels") or {}) for v in found}  # type: ignore[call-overload]
