"""/healthz and /readyz rules: alive unless stopping or the loop is gone (waiting for NATS
or Kubernetes is no reason to restart); ready only when synced, connected to NATS and
answered by the Kubernetes API, with every reason that is not so."""

from __future__ import annotations

import pytest

from fleet.actors.operator.probes import Probes
from fleet.runtime.actorkit.supervisor import Supervisor
from fleet.runtime.kube.errors import KubeUnavailable
from fleet.runtime.kube.health import ApiHealth

pytestmark = pytest.mark.timeout(10)


class World:
    def __init__(self) -> None:
        self.loop = True
        self.nats = False
        self.synced = False
        self.standby = False
        self.kube = ApiHealth()
        self.supervisor = Supervisor(name="test")
        self.probes = Probes(
            supervisor=self.supervisor, loop_running=lambda: self.loop,
            nats_connected=lambda: self.nats, synced=lambda: self.synced, kube=self.kube,
            kube_within=60.0, standby=lambda: self.standby,
        )  # fmt: skip


def test_waiting_to_connect_is_alive_but_not_ready() -> None:
    world = World()
    assert world.probes.alive() is None
    assert world.probes.ready() == (
        "initial sync not done; NATS not connected; no answer from the Kubernetes API yet"
    )


def test_ready_when_synced_connected_and_answered() -> None:
    world = World()
    world.nats, world.synced = True, True
    world.kube.answered()
    assert world.probes.ready() is None
    world.nats = False  # NATS went away: not ready, still alive
    assert world.probes.ready() == "NATS not connected"
    assert world.probes.alive() is None
    world.nats = True
    world.kube.failed("watch", KubeUnavailable("watch deployments: connection refused"))
    assert world.probes.ready() == (
        "Kubernetes API unreachable: watch deployments: connection refused"
    )


def test_stopping_or_a_dead_loop_is_not_alive() -> None:
    world = World()
    world.loop = False
    assert world.probes.alive() == "the event loop is not running"
    world.loop = True
    world.supervisor.fail("actor FleetIndex died: boom")
    assert world.probes.alive() == "stopping: actor FleetIndex died: boom"
    ready = world.probes.ready()
    assert ready is not None
    assert ready.endswith("stopping: actor FleetIndex died: boom")
    other = World()
    other.supervisor.request_stop()
    assert other.probes.alive() == "stopping"


def test_a_standby_replica_is_alive_and_ready_until_it_stops() -> None:
    world = World()
    world.standby, world.loop = True, False  # waiting for the Lease: no loop, no NATS yet
    assert world.probes.alive() is None
    assert world.probes.ready() is None  # a rolling update must not wait on a standby
    world.supervisor.fail("lost the leader Lease")
    assert world.probes.alive() == "stopping: lost the leader Lease"
    assert world.probes.ready() == "stopping: lost the leader Lease"
