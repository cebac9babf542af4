"""The runtime conformance kit: what every runtime must do, seen from the wire.

Why it exists: a runtime (podman today; kvm and kubernetes later) plugs into the agent
behind one port (``fleet/actors/agent/runtimes/port.py``); what a user sees must not
depend on which. The tests in this package drive a real agent through a real
nats-server and read its reports from ``device-state`` as the operator does. All that is
runtime-specific sits behind :class:`RuntimeAdapter`: a new runtime passes the kit by
writing one adapter (see :mod:`.adapters` and docs/runtimes.md) and adding it to the
``subject`` fixture's parameters.

What it must never do: reach into the agent's internals (only the bus and what the
adapter says runs), or wait a fixed time (it waits for conditions, bounded).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec

from fleet.actors.agent.app import AgentApp
from fleet.actors.agent.config import AgentConfig
from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeploymentState,
    DeviceId,
    decode_state,
    desired_state_key,
    device_state_key,
)
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.transport import Message, Subscription

TIMEOUT = 60.0  # generous: a loaded 2-core machine, real runtimes


class RuntimeAdapter(Protocol):
    """The runtime-facing half of the kit: one per runtime under test."""

    name: str

    def start_agent(self, config: AgentConfig) -> AgentApp:
        """A started agent with ``config``, running this runtime (its world kept across
        agents: a restart meets what the last agent left running)."""
        ...

    def stop_agent(self, app: AgentApp) -> None:
        """Stop ``app`` (its workloads keep running) and release what it holds."""
        ...

    def score(self, variant: int) -> dict[str, Any]:
        """A valid score of this runtime's type; each ``variant`` has another spec."""
        ...

    def bad_score(self) -> tuple[dict[str, Any], str]:
        """A score this runtime's type rejects, and the field its Failed message names."""
        ...

    def units(self, device: DeviceId, deployment: str) -> dict[str, str]:
        """What runs of ``deployment`` now: unit id -> a fingerprint that changes when the
        unit is restarted (e.g. its start time)."""
        ...

    def tamper(self, device: DeviceId, deployment: str) -> None:
        """Break the workload by hand, as a person would (remove a unit)."""
        ...


@dataclass
class Bench:
    """The real parts around the agent: NATS, a test bus, the reports it writes."""

    bus: Bus
    loop: EventLoopThread
    nats_url: str
    state_root: Path
    adapter: RuntimeAdapter
    device: DeviceId = field(default_factory=lambda: DeviceId(f"conf-{time.time_ns() % 10**9}"))
    agents: list[AgentApp] = field(default_factory=list)
    reports: list[DeploymentState] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _subscription: Subscription | None = None

    def listen(self) -> None:
        """Record every report this device writes (each value put, not only the last)."""

        def seen(message: Message) -> None:
            if not message.data:
                return
            state = decode_state(message.data)
            with self._lock:
                self.reports.append(state)

        subject = f"$KV.{BUCKET_DEVICE_STATE}.state.{self.device}.>"
        self._subscription = self.loop.run(self.bus.transport.subscribe(subject, seen), timeout=10)
        self.loop.run(self.bus.transport.flush(timeout=10), timeout=15)

    def close(self) -> None:
        for app in list(self.agents):
            self.stop_agent(app)
        if self._subscription is not None:
            self.loop.run(self._subscription.unsubscribe(), timeout=10)

    def start_agent(self) -> AgentApp:
        config = AgentConfig(
            device_id=self.device,
            labels={"site": "lab"},
            nats_urls=[self.nats_url],
            podman_socket="unix:///nonexistent/podman.sock",
            heartbeat_interval_s=1.0,
            state_dir=self.state_root / self.device,
            resync_interval_s=1.0,
            stop_timeout_s=2.0,
        )
        app = self.adapter.start_agent(config)
        self.agents.append(app)
        return app

    def stop_agent(self, app: AgentApp) -> None:
        self.agents.remove(app)
        self.adapter.stop_agent(app)

    def put(self, deployment: str, value: dict[str, Any]) -> int:
        key = desired_state_key(self.device, DeploymentName(deployment))
        data = msgspec.json.encode(value)
        return self.loop.run(self.bus.put(BUCKET_DESIRED_STATE, key, data), timeout=10)

    def delete(self, deployment: str) -> int:
        key = desired_state_key(self.device, DeploymentName(deployment))
        return self.loop.run(self.bus.delete(BUCKET_DESIRED_STATE, key), timeout=10)

    def state(self, deployment: str) -> DeploymentState | None:
        key = device_state_key(self.device, DeploymentName(deployment))
        entry = self.loop.run(self.bus.get(BUCKET_DEVICE_STATE, key), timeout=10)
        return None if entry is None else decode_state(entry.value)

    def seen(self, deployment: str, *, since: int = 0) -> list[DeploymentState]:
        """The reports of ``deployment`` recorded, from the ``since``-th on."""
        with self._lock:
            return [s for s in self.reports if s.deployment == deployment][since:]

    def wait_report(
        self,
        deployment: str,
        check: Callable[[DeploymentState], bool],
        *,
        since: int = 0,
        what: str = "a report",
    ) -> DeploymentState:
        """The first report of ``deployment`` (from the ``since``-th) that passes ``check``."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            for state in self.seen(deployment, since=since):
                if check(state):
                    return state
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} never came; saw {self.seen(deployment)}")
            time.sleep(0.05)

    def wait_units(
        self, deployment: str, check: Callable[[dict[str, str]], bool], *, what: str
    ) -> dict[str, str]:
        deadline = time.monotonic() + TIMEOUT
        while True:
            units = self.adapter.units(self.device, deployment)
            if check(units):
                return units
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} never held; units: {units}")
            time.sleep(0.1)


def is_phase(phase: str, revision: int) -> Callable[[DeploymentState], bool]:
    return lambda s: s.phase.value == phase and s.desired_revision == revision
