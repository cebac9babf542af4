"""Mailbox depths as /metrics shows them: real threading actors blocked on purpose with
mail waiting, summed and maximised by class; a pool's runnable actors; nothing per actor."""

from __future__ import annotations

import threading
import time
from typing import Any

import pykka
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fleet.runtime.prometheus.mailboxes import MailboxDepths

pytestmark = pytest.mark.timeout(30)


class Stuck(pykka.ThreadingActor):
    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def on_receive(self, message: Any) -> None:
        self.gate.wait(20)


class Pool:
    name, runnable = "devices", 7


def test_depths_by_class_and_the_pools_backlog() -> None:
    gate = threading.Event()
    refs = [Stuck.start(gate) for _ in range(2)]
    try:
        for n, ref in enumerate(refs):
            for _ in range(1 + 3 * n):  # the first takes one and waits: 0 and 3 queued
                ref.tell("work")
        registry = CollectorRegistry()
        registry.register(MailboxDepths(actors=lambda: refs, pools=lambda: [Pool()]))

        def samples() -> dict[tuple[str, str], float]:
            text = generate_latest(registry).decode()
            return {
                (s.name, ",".join(s.labels.values())): s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
            }

        deadline = time.monotonic() + 10
        while samples().get(("fleet_operator_mailbox_messages", "Stuck")) != 3:
            assert time.monotonic() < deadline, samples()
            time.sleep(0.02)
        got = samples()
        assert got[("fleet_operator_mailbox_largest", "Stuck")] == 3
        assert got[("fleet_operator_pool_runnable_actors", "devices")] == 7
    finally:
        gate.set()
        for ref in refs:
            ref.stop()
