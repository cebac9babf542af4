"""The simulated kvm and kubernetes runtimes (fleet/devtools/simulated_workloads.py) under
the conformance kit: the real agent, a real nats-server, the kit's own tests."""

from __future__ import annotations

from typing import Any

import pytest
import uvloop

from fleet.actors.agent.app import AgentApp
from fleet.actors.agent.config import AgentConfig
from fleet.actors.agent.runtimes.registry import RuntimeRegistry
from fleet.contracts import DeviceId
from fleet.devtools.simulated_runtime import SimulatedRuntime
from fleet.devtools.simulated_workloads import SimulatedWorkloads
from tests.agent.conformance.kit import RuntimeAdapter

AGENT_OPTIONS: dict[str, Any] = {"max_backoff": 1.0, "event_debounce": 0.1}


class SimulatedKindAdapter:
    """One in-memory runtime of ``name``'s type, kept across agents (a restart meets what
    the last agent left running)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.world = SimulatedWorkloads(score_type=name)

    def start_agent(self, config: AgentConfig) -> AgentApp:
        app = AgentApp(
            config, runtime=SimulatedRuntime(), runtimes=RuntimeRegistry([self.world]),
            loop_factory=uvloop.new_event_loop, **AGENT_OPTIONS,
        )  # fmt: skip
        app.start()
        return app

    def stop_agent(self, app: AgentApp) -> None:
        assert app.stop(timeout=10) == []

    def score(self, variant: int) -> dict[str, Any]:
        if self.name == "kvm":
            return {"type": "kvm", "disk": {"url": f"/images/tiny-{variant}.qcow2"}}
        return {"type": "kubernetes", "namespace": "conf-web", "manifests": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"},
             "data": {"variant": str(variant)}}]}  # fmt: skip

    def bad_score(self) -> tuple[dict[str, Any], str]:
        if self.name == "kvm":
            return {"type": "kvm", "disk": {"url": "relative/tiny.qcow2"}}, "disk.url"
        bad = {"apiVersion": "v1", "kind": "Not A Kind", "metadata": {"name": "web"}}
        return {"type": "kubernetes", "namespace": "conf-web", "manifests": [bad]}, (
            "manifests[0].kind"
        )

    def units(self, device: DeviceId, deployment: str) -> dict[str, str]:
        held = self.world.held.get(deployment)
        return {} if held is None else {u.id: u.id for u in held.units}

    def tamper(self, device: DeviceId, deployment: str) -> None:
        assert self.world.destroy(deployment)


@pytest.fixture(params=["kvm", "kubernetes"])
def subject(request: pytest.FixtureRequest) -> RuntimeAdapter:
    return SimulatedKindAdapter(request.param)
