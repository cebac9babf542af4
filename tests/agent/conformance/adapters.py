"""The runtimes the kit runs against today, each behind :class:`~.kit.RuntimeAdapter`.

* :class:`PodmanAdapter`: the real podman runtime (``PodmanRuntime`` over the private
  podman world of ``tests/fixtures/podman.py``, its local registry and busybox image);
* :class:`SimulatedAdapter`: the simulated runtime of the demo and the load swarm
  (``fleet/devtools/simulated_runtime.py``): the agent's logic over containers in memory.

A kvm or kubernetes runtime adds its adapter here: how to start an agent with it, a
valid score and a bad one of its type, what runs, and how a person breaks it.
"""

from __future__ import annotations

from typing import Any

import msgspec
import uvloop

from fleet.actors.agent.app import AgentApp
from fleet.actors.agent.config import AgentConfig
from fleet.contracts import DeviceId
from fleet.devtools.simulated_runtime import SimulatedRuntime
from fleet.runtime.podman.adapter import PodmanRuntime
from fleet.runtime.podman.port import owner_labels
from tests.agent.conftest import httpd_score
from tests.fixtures.podman import PodmanEnv, free_port

AGENT_OPTIONS: dict[str, Any] = {"max_backoff": 1.0, "event_debounce": 0.1}
BAD_IMAGE = "Not An Image"  # outside the OCI reference grammar


class PodmanAdapter:
    name = "podman"

    def __init__(self, podman: PodmanEnv) -> None:
        self.podman = podman
        self.port = free_port()

    def start_agent(self, config: AgentConfig) -> AgentApp:
        config = msgspec.structs.replace(config, podman_socket=self.podman.socket_url)
        app = AgentApp(
            config,
            runtime=PodmanRuntime(url=self.podman.socket_url),
            loop_factory=uvloop.new_event_loop,
            **AGENT_OPTIONS,
        )
        app.start()
        return app

    def stop_agent(self, app: AgentApp) -> None:
        assert app.stop(timeout=10) == []
        assert isinstance(app.runtime, PodmanRuntime)
        app.runtime.close()

    def score(self, variant: int) -> dict[str, Any]:
        return httpd_score(image=self.podman.image, port=self.port, env={"V": str(variant)})

    def bad_score(self) -> tuple[dict[str, Any], str]:
        return httpd_score(image=BAD_IMAGE, port=self.port), "containers[0].image"

    def _owned(self, device: DeviceId, deployment: str) -> list[dict[str, Any]]:
        args = ["ps", "-a", "--format", "json"]
        for key, value in owner_labels(device, deployment).items():
            args += ["--filter", f"label={key}={value}"]
        found: list[dict[str, Any]] = msgspec.json.decode(self.podman.podman(*args).stdout or "[]")
        return found

    def units(self, device: DeviceId, deployment: str) -> dict[str, str]:
        return {
            c["Id"]: str(c.get("StartedAt"))
            for c in self._owned(device, deployment)
            if c.get("State") == "running"
        }

    def tamper(self, device: DeviceId, deployment: str) -> None:
        [container, *_] = self._owned(device, deployment)
        self.podman.podman("rm", "-f", "-t", "0", container["Id"])


class SimulatedAdapter:
    name = "simulated"

    def __init__(self) -> None:
        self.runtime = SimulatedRuntime()  # one world for every agent of the test

    def start_agent(self, config: AgentConfig) -> AgentApp:
        app = AgentApp(
            config, runtime=self.runtime, loop_factory=uvloop.new_event_loop, **AGENT_OPTIONS
        )
        app.start()
        return app

    def stop_agent(self, app: AgentApp) -> None:
        assert app.stop(timeout=10) == []

    def score(self, variant: int) -> dict[str, Any]:
        container = {"name": "web", "image": "registry.local/app:1", "env": {"V": str(variant)}}
        return {"type": "podman", "containers": [container]}

    def bad_score(self) -> tuple[dict[str, Any], str]:
        container = {"name": "web", "image": BAD_IMAGE}
        return {"type": "podman", "containers": [container]}, "containers[0].image"

    def units(self, device: DeviceId, deployment: str) -> dict[str, str]:
        found = self.runtime.list_containers(labels=owner_labels(device, deployment))
        return {c.id: f"{c.state}:{c.restart_count}" for c in found if c.running}

    def tamper(self, device: DeviceId, deployment: str) -> None:
        [container, *_] = self.runtime.list_containers(labels=owner_labels(device, deployment))
        self.runtime.remove(container.id)
