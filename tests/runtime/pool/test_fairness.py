"""A flooded actor gets ``batch`` messages per turn, then the others get theirs."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from fleet.runtime.actorkit.pool import ActorPool

from .actors import Recorder

pytestmark = pytest.mark.timeout(30)


def test_a_flood_to_one_actor_does_not_starve_another(pool1: ActorPool) -> None:
    gate = threading.Event()
    events: list[Any] = []
    blocker = Recorder.start(pool=pool1, gate=gate)
    flooded = Recorder.start(pool=pool1, events=events)
    quiet = Recorder.start(pool=pool1, events=events)
    for ref in (blocker, flooded, quiet):  # every on_start done: the queue is empty
        ref.ask("events", timeout=5)
    events.clear()
    blocker.tell("block")  # holds the only worker while both actors get mail
    for n in range(5000):
        flooded.tell(("flood", n))
    quiet.tell("quiet")
    gate.set()
    quiet.ask("events", timeout=10)
    flood_before_quiet = events.index("quiet")
    # pool1 runs 8 messages per turn: the quiet actor is served after the first turn.
    assert flood_before_quiet == 8, events[:20]
    assert flooded.ask("events", block=True, timeout=10)[-1] == ("flood", 4999)
    for ref in (blocker, flooded, quiet):
        ref.stop(timeout=5)
