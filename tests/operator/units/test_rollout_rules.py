"""The rollout's rules (fleet.actors.operator.rollout), without servers: a fake fleet of
classes and entries, stepped by hand."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from fleet.actors.operator.rollout import Resume, Rollout, rank
from fleet.actors.operator.rollout_spec import parse_rollout
from fleet.contracts import DeviceId

NEW, OLD = b"new", b"old"


class World:
    """Targets with labels, the entry each holds and the class each device actor says."""

    def __init__(self, spec: dict[str, object], n: int = 20, **kw: object) -> None:
        policy = parse_rollout(spec)
        assert policy is not None
        self.r = Rollout(name="web", policy=policy, revision=2, new=NEW, stable=OLD,
                         stable_revision=1, **kw)  # type: ignore[arg-type]  # fmt: skip
        self.labels: dict[DeviceId, Mapping[str, str]] = {
            DeviceId(f"d{i:02d}"): {"site": "lab" if i < 3 else "prod"} for i in range(n)
        }
        self.entries: dict[DeviceId, bytes | None] = dict.fromkeys(self.labels, OLD)
        self.classes: dict[DeviceId, str] = dict.fromkeys(self.labels, "running")
        self.r.add(self.labels.items())
        self.now = 0.0

    def step(self) -> None:
        """Step, then write what the rollout wants (as the Deployment actor would)."""
        self.r.step(class_of=self.classes.get, updated=self.updated, now=self.now)
        for device in self.labels:
            want = self.r.want(device, self.entries[device])
            if want != self.entries[device]:
                self.entries[device] = want
                if self.classes[device] != "unreachable":
                    self.classes[device] = "pending"  # its new entry is not reported yet

    def updated(self, device: DeviceId) -> bool:
        return self.entries.get(device) == NEW

    def at(self, value: bytes) -> set[DeviceId]:
        return {d for d, v in self.entries.items() if v == value}

    def run_new(self, devices: set[DeviceId] | None = None) -> None:
        for device in devices if devices is not None else self.at(NEW):
            if self.classes[device] != "unreachable":
                self.classes[device] = "running"


def test_batches_take_sizes_of_all_targets_in_rank_order_and_the_rest_last() -> None:
    w = World({"batches": [{"size": "10%"}, {"size": 5}]})
    first, second, rest = w.r.members(0), w.r.members(1), w.r.members(2)
    assert (len(first), len(second), len(rest)) == (2, 5, 13)
    ranked = sorted(w.labels, key=lambda d: rank("web", d))
    assert first + second + rest == ranked  # stable: a hash of name and device


def test_a_selector_batch_takes_only_matching_devices() -> None:
    w = World({"batches": [{"selector": {"matchLabels": {"site": "lab"}}}, {"size": 1}]})
    assert set(w.r.members(0)) == {"d00", "d01", "d02"}
    assert len(w.r.members(1)) == 1
    assert "d00" not in w.r.members(1)


def test_each_batch_waits_for_its_threshold_and_nobody_beyond_it_gets_the_new_score() -> None:
    w = World({"batches": [{"size": "10%"}, {"size": "25%"}]})
    w.step()
    assert w.at(NEW) == set(w.r.members(0))
    w.step()
    assert w.at(NEW) == set(w.r.members(0))  # not running yet: it waits
    w.run_new()
    w.step()
    assert w.at(NEW) == set(w.r.members(0)) | set(w.r.members(1))
    w.run_new()
    w.step()
    w.run_new()
    w.step()
    assert w.r.phase == "Complete"
    assert w.at(NEW) == set(w.labels)


def test_max_unavailable_limits_how_many_update_at_once() -> None:
    w = World({"batches": [{"size": 10}], "maxUnavailable": 2})
    w.step()
    assert len(w.at(NEW)) == 2
    w.run_new()
    w.step()
    assert len(w.at(NEW)) == 4


def test_failures_reaching_the_threshold_halt_and_roll_back_only_after_the_journal() -> None:
    w = World({"batches": [{"size": "10%"}], "failureThreshold": "5%", "autoRollback": True})
    w.step()
    canary = set(w.r.members(0))
    failing = sorted(canary)[0]
    w.classes[failing] = "failed"
    step = w.r.step(class_of=w.classes.get, updated=w.updated, now=0)
    assert step.journal is not None
    assert step.journal[0] == "RolledBack"
    assert w.r.phase == "RolledBack"
    assert w.r.want(failing, NEW) == NEW  # not before the journal is written
    touched = w.r.journaled("RolledBack")
    assert set(touched) == set(w.labels)
    assert all(w.r.want(d, w.entries[d]) == OLD for d in w.labels)


def test_without_auto_rollback_a_halt_keeps_what_was_written_and_admits_nothing() -> None:
    w = World({"batches": [{"size": 2}, {"size": 2}], "failureThreshold": 1})
    w.step()
    w.classes[sorted(w.at(NEW))[0]] = "failed"
    w.step()
    assert w.r.phase == "Halted"
    assert len(w.at(NEW)) == 2
    w.run_new()
    w.step()
    assert len(w.at(NEW)) == 2  # halted for good: a new revision or an undo goes on


def test_failure_threshold_is_of_the_devices_in_the_batches_reached() -> None:
    w = World({"batches": [{"size": 10}], "failureThreshold": "20%"}, n=20)
    w.step()
    w.classes[sorted(w.at(NEW))[0]] = "failed"  # 1 of 10 reached: under 2
    w.step()
    phases = [w.r.phase]
    w.classes[sorted(w.at(NEW))[1]] = "failed"
    w.step()
    phases.append(w.r.phase)
    assert phases == ["Progressing", "Halted"]


def test_unreachable_devices_are_skipped_by_default_and_fail_with_unreachable_fail() -> None:
    spec: dict[str, object] = {"batches": [{"size": 4}], "failureThreshold": 2}
    w = World(spec)
    offline = set(w.r.members(0)[:2])
    for device in offline:
        w.classes[device] = "unreachable"
    w.step()
    assert offline <= w.at(NEW)  # admitted at once: they catch up when back
    w.run_new()
    w.step()
    assert w.r.batch == 1  # the two reachable ones were enough
    assert w.r.status(class_of=w.classes.get, updated=w.updated)["batches"][0]["skipped"] == 2

    w = World({**spec, "unreachable": "fail"})
    for device in w.r.members(0)[:2]:
        w.classes[device] = "unreachable"
    w.step()
    assert w.r.phase == "Halted"


def test_pause_between_batches_waits_the_duration() -> None:
    w = World({"batches": [{"size": 2}], "pauseBetweenBatches": "30s"})
    w.step()
    w.run_new()
    step = w.r.step(class_of=w.classes.get, updated=w.updated, now=100.0)
    assert w.r.phase == "Paused"
    assert step.wake_at == 130.0
    w.now = 129.0
    w.step()
    assert len(w.at(NEW)) == 2
    w.now = 130.0
    w.step()
    assert len(w.at(NEW)) == 20


def test_manual_approval_and_a_persons_pause() -> None:
    w = World({"batches": [{"size": 2}], "approval": "manual"})
    w.step()
    w.run_new()
    w.step()
    assert w.r.phase == "WaitingForApproval"
    w.r.approved = 1
    w.step()
    assert len(w.at(NEW)) == 20
    w = World({"batches": [{"size": 2}]})
    w.r.paused = True
    w.step()
    assert w.r.phase == "Paused"
    assert w.at(NEW) == set()


def test_a_selector_matching_nothing_waits_and_names_the_field() -> None:
    w = World({"batches": [{"selector": {"matchLabels": {"site": "mars"}}}]})
    w.step()
    assert w.r.phase == "Progressing"
    assert "spec.rollout.batches[0].selector matches no targeted device" in w.r.reason
    assert w.at(NEW) == set()


def test_after_a_restart_it_resumes_at_the_recorded_batch_and_writes_nobody_twice() -> None:
    w = World({"batches": [{"size": 2}, {"size": 3}]})
    for _ in range(2):
        w.step()
        w.run_new()
    assert w.r.batch == 1  # the second batch runs the new score; its threshold not seen yet
    entries, classes = dict(w.entries), dict(w.classes)
    # the status lagged: it says batch 1 (index 0); the entries say more were written
    again = World({"batches": [{"size": 2}, {"size": 3}]}, resume=Resume(batch=0))
    again.entries, again.classes = dict(entries), dict(classes)
    again.step()
    assert again.r.batch == 2  # passes the batches already done
    written = {d: v for d, v in again.entries.items() if v != entries[d]}
    assert written == dict.fromkeys(again.r.members(2), NEW)  # the rest, and only once


def test_a_journaled_outcome_is_kept_after_a_restart() -> None:
    w = World({"batches": [{"size": 2}]}, resume=Resume(outcome="RolledBack", reason="bad"))
    assert w.r.phase == "RolledBack"
    assert all(w.r.want(d, NEW) == OLD for d in w.labels)
    w = World({"batches": [{"size": 2}]}, resume=Resume(outcome="Complete"))
    assert all(w.r.want(d, OLD) == NEW for d in w.labels)


def test_a_device_joining_mid_rollout_gets_what_its_batch_position_says() -> None:
    w = World({"batches": [{"size": "50%"}]}, n=10)
    w.step()
    w.run_new()
    w.step()
    assert w.r.batch == 1  # the rest is current: its devices are admitted
    joiner = DeviceId("late")
    w.r.add([(joiner, {"site": "prod"})])
    assert w.r.want(joiner, None) in (NEW, OLD)
    before = w.r.batch
    w.r.step(class_of=w.classes.get, updated=w.updated, now=0)
    index = next(i for i in range(w.r.batch_count) if joiner in w.r.members(i))
    assert (w.r.want(joiner, None) == NEW) == (index < before or index == w.r.batch)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"batches": []}, "spec.rollout.batches"),
        ({"batches": [{"size": "60%"}, {"size": "41%"}]}, "add up to 101%"),
        ({"batches": [{"size": 0}]}, "spec.rollout.batches[0].size"),
        ({"batches": [{}]}, "spec.rollout.batches[0] needs a size, a selector"),
        ({"batches": [{"size": 1, "color": "red"}]}, "unknown fields"),
        ({"batches": [{"size": 1}], "successThreshold": 101}, "spec.rollout.successThreshold"),
        ({"batches": [{"size": 1}], "failureThreshold": "0%"}, "spec.rollout.failureThreshold"),
        ({"batches": [{"size": 1}], "maxUnavailable": "x"}, "spec.rollout.maxUnavailable"),
        ({"batches": [{"size": 1}], "pauseBetweenBatches": "1d"}, "pauseBetweenBatches"),
        ({"batches": [{"size": 1}], "approval": "maybe"}, "spec.rollout.approval"),
        ({"batches": [{"size": 1}], "unreachable": "ignore"}, "spec.rollout.unreachable"),
        ({"batches": [{"size": 1}], "autoRollback": "yes"}, "spec.rollout.autoRollback"),
        ({"batches": [{"size": 1}] * 21}, "at most 20"),
        ("canary", "spec.rollout must be an object"),
    ],
)
def test_a_bad_rollout_spec_names_the_field(raw: object, field: str) -> None:
    from fleet.errors import SpecError

    with pytest.raises(SpecError, match=None) as caught:
        parse_rollout(raw)
    assert field in str(caught.value)


def test_durations_and_percentages_parse() -> None:
    policy = parse_rollout({
        "batches": [{"size": "1%"}, {"size": 3}],
        "pauseBetweenBatches": "1h30m",
        "successThreshold": "90%",
        "failureThreshold": "5%",
        "maxUnavailable": "50%",
    })  # fmt: skip
    assert policy is not None
    assert policy.pause == 5400.0
    assert policy.success_threshold == 90
    assert policy.failure_threshold is not None
    assert policy.failure_threshold.of(110) == 6  # rounds up
    assert parse_rollout(None) is None
