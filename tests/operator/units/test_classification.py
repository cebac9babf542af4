"""Classification: the rule, the device's classes for each Deployment, and the aggregate."""

from __future__ import annotations

from collections.abc import Sequence

from fleet.actors.operator.messages import Classified, Reported
from fleet.actors.operator.reports import DeviceReports
from fleet.actors.operator.status import Aggregate, classify
from fleet.contracts import DeploymentName, DeviceId, Phase

from .fakes import Ref, report

WEB, API = DeploymentName("web"), DeploymentName("api")
D1 = DeviceId("d1")


def test_the_rule() -> None:
    assert classify(online=False, revision=5, phase=Phase.RUNNING, reported=5) == "unreachable"
    assert classify(online=True, revision=5, phase=Phase.RUNNING, reported=5) == "running"
    assert classify(online=True, revision=5, phase=Phase.FAILED, reported=5) == "failed"
    assert classify(online=True, revision=6, phase=Phase.RUNNING, reported=5) == "pending"
    assert classify(online=True, revision=None, phase=Phase.RUNNING, reported=5) == "pending"
    assert classify(online=True, revision=5, phase=None, reported=-1) == "pending"
    assert classify(online=True, revision=5, phase=Phase.PULLING, reported=5) == "pending"


def classes(sends: Sequence[tuple[object, object]]) -> list[tuple[object, str]]:
    return [(ref, v.cls) for ref, v in sends if isinstance(v, Classified)]


def test_a_registration_is_answered_and_then_only_changes_are_sent() -> None:
    ref = Ref()
    device = DeviceReports(D1, [report(phase=Phase.RUNNING, desired_revision=5)])
    assert classes(device.expect(WEB, ref, None, online=True)) == [(ref, "pending")]
    # each class names the revision it was decided against (a rollout checks it)
    running = Classified(device=D1, cls="running", revision=5)
    assert device.expect(WEB, ref, 5, online=True) == [(ref, running)]
    assert device.expect(WEB, ref, 5, online=True) == []  # no change
    offline = Classified(device=D1, cls="unreachable", revision=5)
    assert device.classes(online=False) == [(ref, offline)]
    failed = device.report(report(phase=Phase.FAILED, desired_revision=5, message="boom"),
                           True)  # fmt: skip
    assert failed == [(ref, Classified(device=D1, cls="failed", message="boom", revision=5))]
    again = device.report(report(phase=Phase.FAILED, desired_revision=5, message="again"),
                          True)  # fmt: skip
    assert again[0][1] == Classified(device=D1, cls="failed", message="again", revision=5)


def test_a_first_registration_may_leave_out_pending_a_new_owner_is_always_answered() -> None:
    ref, heir = Ref("owner"), Ref("heir")
    device = DeviceReports(D1)
    assert device.expect(WEB, ref, None, online=True, answer=False) == []
    assert classes(device.expect(WEB, ref, None, online=False, answer=False)) == [
        (ref, "unreachable")
    ]
    device.unexpect(WEB, heir)  # not its registration: ignored
    assert device.expect(WEB, heir, None, online=False) == [
        (heir, Classified(device=D1, cls="unreachable"))
    ]
    device.unexpect(WEB, heir)
    assert device.report(report(phase=Phase.RUNNING), True) == ()  # nobody registered


def test_a_revision_newer_than_expected_is_passed_on_to_be_checked() -> None:
    ref = Ref()
    device = DeviceReports(D1)
    device.expect(WEB, ref, 5, online=True, answer=False)
    assert device.report(report(desired_revision=5), True) == [
        (ref, Classified(device=D1, cls="running", revision=5))
    ]  # as expected: nothing to check
    newer = device.report(report(desired_revision=9), True)
    assert (ref, Reported(device=D1, revision=9)) in newer
    assert classes(newer) == [(ref, "pending")]
    assert device.report(report(desired_revision=3, phase=None), True) == ()  # deleted
    late = DeviceReports(D1, [report(desired_revision=9)])  # reported before registration
    assert (ref, Reported(device=D1, revision=9)) in late.expect(WEB, ref, 5, online=True)
    unknown = DeviceReports(D1)
    unknown.expect(WEB, ref, None, online=True)
    assert (ref, Reported(device=D1, revision=1)) in unknown.report(report(), True)


def test_reports_are_kept_per_deployment_and_a_deleted_one_goes() -> None:
    device = DeviceReports(D1, [report(deployment="web"), report(deployment="api")])
    assert [r.deployment for r in device] == ["api", "web"]
    device.report(report(deployment="web", phase=None), True)
    assert [r.deployment for r in device] == ["api"]
    assert device.get(API) is not None
    ref = Ref()
    device.expect(API, ref, 1, online=True)
    device.drop_ref(ref)
    assert device.classes(online=False) == []


def test_the_aggregate_counts_each_device_once_with_failure_messages() -> None:
    agg = Aggregate()
    agg.set(DeviceId("b"), "failed", "disk full")
    agg.set(DeviceId("a"), "failed", "oom")
    agg.set(DeviceId("c"), "running")
    assert agg.counts() == {"targeted": 3, "running": 1, "pending": 0, "failed": 2,
                            "unreachable": 0}  # fmt: skip
    assert agg.failing() == [{"device": "a", "message": "oom"},
                             {"device": "b", "message": "disk full"}]  # fmt: skip
    agg.set(DeviceId("a"), "running")
    agg.remove(DeviceId("b"))
    assert agg.counts()["failed"] == 0
    assert agg.failing() == []
    for i in range(20):
        agg.set(DeviceId(f"f{i:02d}"), "failed", "x" * 1000)
    failing = agg.failing()
    assert len(failing) == 10
    assert len(failing[0]["message"]) == 256
