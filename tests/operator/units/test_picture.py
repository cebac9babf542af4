"""The Device resource's picture of one device, from what its actor knows."""

from __future__ import annotations

import datetime

import msgspec

from fleet.actors.operator.liveness import Liveness
from fleet.actors.operator.picture import DevicePicture, duplicate_condition
from fleet.contracts import DeviceId, DeviceInfo, Inventory, Phase

from .fakes import at, report

INFO = DeviceInfo(
    device_id=DeviceId("d1"), labels={"site": "paris"}, agent_version="0.1.0", updated_at=at(),
    inventory=Inventory(hostname="h", arch="x86_64", os="o", kernel="k", cpus=1,
                        memory_bytes=1, runtime_name="podman", runtime_version="4"),
)  # fmt: skip


def test_a_device_that_never_announced_itself_has_no_resource() -> None:
    picture = DevicePicture(DeviceId("d1"))
    assert not picture.shown
    assert picture.render(liveness=Liveness(timeout=30.0), reports=[]) is None


def test_the_picture_shows_info_liveness_reports_and_stale() -> None:
    picture = DevicePicture(DeviceId("d1"))
    picture.set_info(INFO)
    live = Liveness(timeout=30.0)
    live.beat(at(5).timestamp(), at(5), now=at(6).timestamp())
    reports = [report("d1", "api", Phase.FAILED, message="boom"), report("d1", "web")]
    mirror = picture.render(liveness=live, reports=reports)
    assert mirror is not None
    assert mirror.labels == (("site", "paris"),)
    status = msgspec.json.decode(mirror.status)
    assert status["online"] is True
    assert status["lastHeartbeat"] == "2024-01-01T00:00:05Z"
    assert [d["deployment"] for d in status["deployments"]] == ["api", "web"]
    assert status["deployments"][0]["message"] == "boom"
    assert status["stale"] is False
    assert status["staleSince"] is None
    picture.forgotten = at(100)
    final = picture.render(liveness=live, reports=reports)
    assert final is not None
    assert final.final
    status = msgspec.json.decode(final.status)
    assert status["stale"] is True
    assert status["online"] is False


def test_deleted_info_deletes_the_resource() -> None:
    picture = DevicePicture(DeviceId("d1"))
    picture.set_info(None)
    mirror = picture.render(liveness=Liveness(timeout=30.0), reports=[])
    assert mirror is not None
    assert mirror.delete


def test_the_duplicate_condition_is_raised_then_cleared_and_never_cleared_unraised() -> None:
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    assert duplicate_condition(None, None, now=now) is None
    raised = duplicate_condition(("A", "B"), None, now=now)
    assert raised is not None
    assert raised["status"] == "True"
    assert "A, B" in raised["message"]
    cleared = duplicate_condition(None, raised, now=now)
    assert cleared is not None
    assert cleared["reason"] == "OneInstance"
    assert duplicate_condition(None, cleared, now=now) is cleared
