"""Operator test fixtures: the real operator against a real nats-server and the API emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fleet.actors.operator.app import Operator, OperatorConfig
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.kube.client import KubeClient
from fleet.runtime.nats.bus import Bus
from tests.fixtures.kube import KubeCluster

from .sim import Fleet

FAST = OperatorConfig(
    liveness_timeout=2.0,
    status_delay=0.05,
    status_interval=0.2,
    tick=0.2,
    device_qps=500.0,
    watch_timeout=5,
    watch_read_timeout=3.0,
)


@pytest.fixture
def fleet(bus: Bus, event_loop_thread: EventLoopThread) -> Fleet:
    return Fleet(bus, event_loop_thread)


@pytest.fixture
def start_operator(
    bus: Bus, event_loop_thread: EventLoopThread, kube: KubeCluster
) -> Iterator[Callable[..., Operator]]:
    """Start (and at teardown stop) operators; several in sequence simulate restarts."""
    running: list[Operator] = []

    def start(**overrides: Any) -> Operator:
        config = OperatorConfig(
            **{**{f: getattr(FAST, f) for f in FAST.__struct_fields__}, **overrides}
        )
        operator = Operator(
            bus=bus, loop_thread=event_loop_thread, kube=KubeClient(kube.api_client), config=config
        )
        operator.start()
        running.append(operator)
        return operator

    yield start
    for operator in running:
        operator.stop()
