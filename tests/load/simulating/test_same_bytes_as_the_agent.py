"""The shared simulated device writes the agent's bytes: the same keys, the same values.

No servers: the agent's reporting writes to a recording publisher, the simulated device
to a recording bus, both on the same clock, and the bytes are compared. A malformed
desired entry goes through the real agent (its device actor and a reconciler, on the
in-memory runtime) and through the simulated device: both report it ``Failed`` at its
revision, with the same message, naming the offending field.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

from fleet import __version__
from fleet.actors.agent.config import AgentConfig
from fleet.actors.agent.device import DeviceActor
from fleet.actors.agent.messages import DesiredChanged
from fleet.actors.agent.reporting import DeviceReporter
from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_STATE,
    AgentHealth,
    DeploymentName,
    DeploymentState,
    DeviceId,
    Phase,
    decode_report_entry,
)
from fleet.devtools.simdevice import SimulatedDevice
from fleet.devtools.simprofile import Behaviour
from fleet.runtime.host.desired_store import DesiredStore
from fleet.runtime.host.inventory import read_inventory
from fleet.runtime.nats.kv import KvEntry
from tests.agent.fakes import FakeRuntime, FakeTimers

AT = dt.datetime(2025, 3, 1, 12, 30, 5, 123000, tzinfo=dt.UTC)
DEVICE = DeviceId("pi-01")
WEB = DeploymentName("web")
LABELS = {"site": "lab", "fleet.nationtech.io/tier": "edge"}
GOOD = b'{"type":"podman","containers":[{"name":"web","image":"registry.local/app:1"}]}'
BAD_IMAGE = b'{"type":"podman","containers":[{"name":"web","image":"../../etc"}]}'
# Every phase written, in order; heartbeats only when the test beats.
EVERY_PHASE = Behaviour(
    pending_s=0, pulling_s=0, starting_s=0, coalesce=False, heartbeat_interval_s=0
)

Written = tuple[str, str, bytes]


class Recorder:
    """The agent's publisher port and the device's bus, both writing down what they get."""

    def __init__(self) -> None:
        self.values: list[Written] = []

    def publish(self, bucket: str, key: str, value: bytes, *, replay: bool = True) -> None:
        self.values.append((bucket, key, value))

    async def put(self, bucket: str, key: str, value: bytes) -> int:
        self.values.append((bucket, key, value))
        return len(self.values)

    def reports(self) -> list[Written]:
        return [v for v in self.values if v[0] == BUCKET_DEVICE_STATE]


class _NoFeed:
    async def stop(self) -> None:
        return None


class FedDevice(SimulatedDevice):
    """The shared device with its desired entries handed in by the test."""

    agent_version = __version__  # the agent's, so that the info compares
    on_entry: Callable[[KvEntry], None]

    def follow(
        self, *, on_entry: Callable[[KvEntry], None], on_synced: Callable[[], None]
    ) -> _NoFeed:
        self.on_entry = on_entry
        on_synced()
        return _NoFeed()


def simulated(recorder: Recorder, behaviour: Behaviour = EVERY_PHASE) -> FedDevice:
    return FedDevice(
        bus=recorder,  # type: ignore[arg-type]  # only put() is used
        device_id=DEVICE,
        labels=LABELS,
        behaviour=behaviour,
        inventory=read_inventory(runtime_name="podman", runtime_version="4.3.1"),
        instance_id="9f2c41d07a3b5e68",
        clock=lambda: AT,
    )


def agent_reporter(recorder: Recorder) -> DeviceReporter:
    return DeviceReporter(
        device_id=DEVICE, instance_id="9f2c41d07a3b5e68", publisher=recorder, clock=lambda: AT
    )


def entry(value: bytes, revision: int, *, deleted: bool = False) -> KvEntry:
    return KvEntry(
        bucket=BUCKET_DESIRED_STATE,
        key=f"{DEVICE}.{WEB}",
        value=b"" if deleted else value,
        revision=revision,
        operation="DEL" if deleted else "PUT",
    )


def run_device(device: FedDevice, entries: list[KvEntry]) -> None:
    """Start the device, hand it ``entries`` one by one (each rollout to its end), stop."""

    async def go() -> None:
        await device.start()
        await device.heartbeat()
        await device.heartbeat()
        for e in entries:
            device.on_entry(e)
            for _ in range(50):  # zero delays: a rollout is a few loop turns
                await asyncio.sleep(0)
        await device.stop()

    asyncio.run(go())


def test_info_heartbeats_and_every_report_are_the_agents_bytes() -> None:
    sim, agent = Recorder(), Recorder()
    run_device(simulated(sim), [entry(GOOD, 12), entry(b"", 13, deleted=True)])

    reporter = agent_reporter(agent)
    reporter.publish_info(labels=LABELS, runtime_name="podman", runtime_version="4.3.1")
    reporter.heartbeat(health=AgentHealth())  # the agent's counters before any pass
    reporter.heartbeat(health=AgentHealth())
    for phase, message, revision in [
        (Phase.PENDING, None, 12),
        (Phase.PULLING, "pulling registry.local/app:1", 12),
        (Phase.STARTING, None, 12),
        (Phase.RUNNING, None, 12),
        (Phase.REMOVED, None, 13),
    ]:
        reporter.publish_state(
            DeploymentState(
                device_id=DEVICE,
                deployment=WEB,
                phase=phase,
                desired_revision=revision,
                message=message,
                updated_at=AT,
            )
        )

    assert [key for _, key, _ in sim.values] == [
        "info.pi-01",
        "heartbeat.pi-01",
        "heartbeat.pi-01",
        *["state.pi-01.web"] * 5,
    ]
    assert sim.values == agent.values


def test_a_malformed_desired_entry_is_failed_as_the_agent_fails_it(tmp_path: Path) -> None:
    sim = Recorder()
    run_device(simulated(sim), [entry(BAD_IMAGE, 7)])
    [(_, key, value)] = sim.reports()
    by_sim = decode_report_entry(key, value).state

    agent = Recorder()
    config = AgentConfig(device_id=DEVICE, labels=LABELS, nats_urls=["nats://unused"])
    ref = DeviceActor.start(
        config=config,
        runtime=FakeRuntime(),
        publisher=agent,
        store=DesiredStore(tmp_path),
        timers=FakeTimers(),
        instance_id="9f2c41d07a3b5e68",
    )
    try:
        ref.tell(DesiredChanged(entry=entry(BAD_IMAGE, 7)))
        deadline = time.monotonic() + 5
        while not any(b"Failed" in v for _, _, v in agent.reports()):
            assert time.monotonic() < deadline, agent.values
            time.sleep(0.01)
    finally:
        ref.stop()
    failed = [decode_report_entry(k, v).state for _, k, v in agent.reports()]
    by_agent = next(s for s in failed if s is not None and s.phase is Phase.FAILED)

    assert by_sim is not None
    assert key == f"state.{DEVICE}.{WEB}"
    assert (by_sim.phase, by_sim.desired_revision) == (Phase.FAILED, 7)
    assert by_sim.message == by_agent.message
    assert by_sim.desired_revision == by_agent.desired_revision
    assert by_sim.message is not None
    assert "containers[0].image" in by_sim.message
