"""A Deployment's Events never run ahead of its status: ``Ready`` is posted once the API
server took the patch that shows it, not when the status was built. An operator killed
between the two then says it again from the old status instead of twice (the crash test:
tests/operator/events/test_crash.py)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping
from typing import Any

from fleet.actors.operator import messages as m
from fleet.actors.operator.deployment import DeploymentActor
from fleet.contracts import DeviceId
from fleet.runtime.kube.events import EventNote

from .fakes import Api, Ref, Timers, Writer, eventually
from .test_actors_with_fake_ports import expects, spec_msg

D1 = DeviceId("d1")


class HeldApi(Api):
    """Status patches wait for the test: ``answer`` completes the oldest one."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[concurrent.futures.Future[None]] = []

    def patch_deployment_status(
        self, *, namespace: str, name: str, status: Mapping[str, Any]
    ) -> concurrent.futures.Future[None]:
        self.statuses.append(status)
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.waiting.append(future)
        return future

    def answer(self, error: Exception | None = None) -> None:
        future = self.waiting.pop(0)
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


class Notes:
    def __init__(self) -> None:
        self.notes: list[EventNote] = []

    def post(self, note: EventNote) -> None:
        self.notes.append(note)

    def reasons(self) -> list[str]:
        return [n.reason for n in self.notes]


def ready(status: Mapping[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status["conditions"])


def test_ready_is_posted_only_once_its_patch_was_taken_and_a_refused_one_says_nothing() -> None:
    api, notes, dev1 = HeldApi(), Notes(), Ref("d1")
    actor = DeploymentActor.start(
        key=("ns", "web"), writer=Writer(auto=True), api=api, timers=Timers(hold=(m.RegisterLate,)),
        index=Ref("index"), events=notes,
    )  # fmt: skip
    try:
        actor.tell(spec_msg())
        actor.tell(m.Activate(desired=(), targets=((D1, dev1),)))
        eventually(lambda: bool(expects(dev1)), timeout=30)
        expects(dev1)[0].reply.put(m.Classified(device=D1, cls="running"))
        # the statuses up to Ready are built and sent one at a time; each waits for us
        for _ in range(10):
            eventually(lambda: len(api.waiting) == 1, timeout=30)
            if ready(api.statuses[-1]):
                break
            api.answer()
        else:
            raise AssertionError(f"no Ready status in {len(api.statuses)} patches")
        assert "Ready" not in notes.reasons()  # built, in flight: not yet said

        api.answer(RuntimeError("503 from the API server"))  # refused: still not said
        eventually(lambda: len(api.waiting) == 1, timeout=30)  # tried again, rebuilt
        assert ready(api.statuses[-1])
        assert "Ready" not in notes.reasons()

        api.answer()
        eventually(lambda: notes.reasons().count("Ready") == 1, timeout=30)
    finally:
        actor.stop()
    assert notes.reasons().count("Ready") == 1
