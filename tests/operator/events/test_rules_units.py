"""Which Events a Deployment's statuses and a device's liveness call for (no servers):
transitions only, nothing again after a restart that the status already says, a
Deployment's failures as one note naming the count and a few ids."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fleet.actors.operator.events import DeploymentEvents, DeviceEvents
from fleet.actors.operator.ports import EventsPort
from fleet.runtime.kube.client import KubeObject
from fleet.runtime.kube.events import EventNote

pytestmark = pytest.mark.timeout(30)


class Notes:
    def __init__(self) -> None:
        self.notes: list[EventNote] = []

    def post(self, note: EventNote) -> None:
        self.notes.append(note)

    def take(self) -> list[tuple[str, str, str]]:
        out: list[tuple[str, str, str]] = [(n.type, n.reason, n.message) for n in self.notes]
        self.notes.clear()
        return out


def obj(status: Any = None) -> KubeObject:
    return KubeObject(
        namespace="ns", name="web", uid="u-1", generation=1, resource_version="1",
        creation_timestamp="", deletion_timestamp=None, finalizers=(), spec=b"{}",
        status=msgspec.json.encode(status),
    )  # fmt: skip


def status(
    ready: str, reason: str, message: str = "m", *, failed: int = 0, targeted: int = 3,
    rollout: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {
        "aggregate": {"targeted": targeted, "running": targeted - failed, "pending": 0,
                      "failed": failed, "unreachable": 0},
        "failingDevices": [{"device": f"d{i:04d}", "message": "pull failed"}
                           for i in range(min(failed, 10))],
        "conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": message}],
    }  # fmt: skip
    if rollout is not None:
        out["rollout"] = rollout
    return out


def events() -> tuple[Notes, DeploymentEvents]:
    notes = Notes()
    port: EventsPort = notes
    return notes, DeploymentEvents(port, clock=lambda: 5.0)


def test_ready_then_not_ready_then_ready_again() -> None:
    notes, rules = events()
    rules.seed(obj())
    rules.status(obj(), status("Unknown", "Syncing"))
    rules.status(obj(), status("False", "Writing"))
    assert notes.take() == []  # never Ready yet: nothing stopped
    rules.status(obj(), status("True", "AllRunning", "3/3 running"))
    rules.status(obj(), status("True", "AllRunning", "3/3 running"))
    assert notes.take() == [("Normal", "Ready", "3/3 running")]
    rules.status(obj(), status("False", "Progressing", "2/3 running, 1 unreachable"))
    assert notes.take() == [("Warning", "NotReady", "Progressing: 2/3 running, 1 unreachable")]
    rules.status(obj(), status("True", "AllRunning", "3/3 running"))
    rules.status(obj(), status("False", "Writing", "writing desired state for 3 devices"))
    assert notes.take() == [
        ("Normal", "Ready", "3/3 running"),
        ("Normal", "NotReady", "Writing: writing desired state for 3 devices"),  # a new spec
    ]
    rules.status(obj(), status("True", "AllRunning"))
    (posted,) = notes.notes
    assert posted.obj.kind == "Deployment"
    assert posted.obj.uid == "u-1"
    assert posted.at == 5.0
    assert posted.obj.api_version == "fleet.nationtech.io/v1alpha1"


def test_failures_are_one_note_naming_the_count_and_a_few_ids() -> None:
    notes, rules = events()
    rules.status(obj(), status("False", "DevicesFailing", failed=1000, targeted=1000))
    ((kind, reason, message),) = notes.take()
    assert (kind, reason) == ("Warning", "DevicesFailed")
    assert message.startswith("1000 of 1000 targeted devices failed: d0000, d0001, d0002, "
                              "d0003, d0004 and 995 more; d0000: pull failed")  # fmt: skip
    rules.status(obj(), status("False", "DevicesFailing", failed=1000, targeted=1000))
    assert notes.take() == []  # unchanged
    rules.status(obj(), status("True", "AllRunning"))
    rules.status(obj(), status("False", "DevicesFailing", failed=2))
    assert [r for _, r, _ in notes.take()] == ["Ready", "NotReady", "DevicesFailed"]


def test_invalid_spec_and_name_conflict_have_their_own_warning_once_per_message() -> None:
    notes, rules = events()
    rules.status(obj(), status("True", "AllRunning"))
    rules.status(obj(), status("False", "InvalidSpec", "selector: bad operator 'Nope'"))
    rules.status(obj(), status("False", "InvalidSpec", "selector: bad operator 'Nope'"))
    rules.status(obj(), status("False", "InvalidSpec", "score: not an object"))
    rules.status(obj(), status("False", "NameConflict", "used by team-a/web"))
    assert notes.take() == [
        ("Normal", "Ready", "m"),
        ("Warning", "InvalidSpec", "selector: bad operator 'Nope'"),
        ("Warning", "InvalidSpec", "score: not an object"),
        ("Warning", "NameConflict", "used by team-a/web"),
    ]


def test_a_restart_does_not_tell_again_what_the_status_says() -> None:
    notes, rules = events()
    before = status("False", "DevicesFailing", failed=2, rollout={"phase": "Halted"})
    before["conditions"][0]["reason"] = "InvalidSpec"
    rules.seed(obj(before))
    rules.status(obj(), status("False", "InvalidSpec", "m", failed=2, rollout={"phase": "Halted"}))
    assert notes.take() == []
    notes2, again = events()
    again.seed(obj(status("True", "AllRunning")))
    again.status(obj(), status("True", "AllRunning"))
    assert notes2.take() == []


@pytest.mark.parametrize(
    "hostile",
    [
        b"not json",
        b'{"conditions": 5}',
        b"[" * 5000 + b"]" * 5000,
        b'{"aggregate": {"failed": "x"}}',
    ],
)
def test_a_status_it_cannot_read_is_no_baseline(hostile: bytes) -> None:
    notes, rules = events()
    rules.seed(msgspec.structs.replace(obj(), status=hostile))
    rules.status(obj(), status("True", "AllRunning"))
    assert [r for _, r, _ in notes.take()] == ["Ready"]


def test_a_rollout_that_halts_or_rolls_back_is_a_warning() -> None:
    notes, rules = events()
    progressing = {"phase": "Progressing", "revision": 2}
    halted = {"phase": "Halted", "revision": 2, "reason": "3 of 10 devices failed in batch 1"}
    rules.status(obj(), status("False", "Progressing", rollout=progressing))
    rules.status(obj(), status("False", "Progressing", rollout=halted))
    rules.status(obj(), status("False", "Progressing", rollout=halted))
    rules.status(obj(), status("False", "Progressing", rollout={"phase": "RolledBack",
                                                                "revision": 2}))  # fmt: skip
    assert notes.take() == [
        ("Warning", "RolloutHalted", "revision 2: 3 of 10 devices failed in batch 1"),
        ("Warning", "RolledBack", "revision 2: RolledBack"),
    ]


def test_a_device_unreachable_then_back_but_a_new_or_already_silent_one_is_not_back() -> None:
    notes = Notes()
    device = DeviceEvents("Pi_01", notes, clock=lambda: 1.0)
    device.liveness(online=True, changed=True, known=True, timeout=30)  # new: online
    assert notes.take() == []
    device.liveness(online=False, changed=True, known=True, timeout=30)
    device.liveness(online=True, changed=True, known=True, timeout=30)
    assert notes.take() == [
        ("Warning", "DeviceUnreachable", "no heartbeat for more than 30 s"),
        ("Normal", "DeviceReachable", "heartbeating again"),
    ]
    silent = DeviceEvents("pi-02", notes)
    silent.liveness(online=False, changed=False, known=True, timeout=30)  # stale at start
    silent.liveness(online=True, changed=True, known=True, timeout=30)
    assert [r for _, r, _ in notes.take()] == ["DeviceReachable"]
    never = DeviceEvents("pi-03", notes)
    never.liveness(online=False, changed=False, known=False, timeout=30)
    never.liveness(online=True, changed=True, known=True, timeout=30)
    device.duplicate(("a", "b"))
    device.duplicate(None)
    (dup,) = notes.notes
    assert dup.reason == "DuplicateDeviceId"
    assert "a, b" in dup.message
    assert dup.obj.kind == "Device"
    assert dup.obj.namespace is None
    assert dup.obj.uid == ""
    assert dup.obj.name.startswith("pi-01-")  # the Device resource's name, not the id
