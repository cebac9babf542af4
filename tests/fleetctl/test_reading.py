"""fleetctl devices / deployments / status: what a user reads, as tables and as JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fleet.actors.operator.app import Operator
from fleet.contracts import Phase
from tests.operator.sim import Fleet, eventually

from .conftest import WEB, Result


def test_devices_show_labels_online_heartbeat_and_phases(
    ctl: Callable[..., Result],
    fleet: Fleet,
    start_operator: Callable[..., Operator],
    manifest: Callable[..., str],
) -> None:
    fleet.join(["d1", "d2"], {"site": "lab"})
    fleet.beat(["d3"], age=300)  # a device heard of long ago
    start_operator(liveness_timeout=60)
    assert ctl("apply", "-f", manifest(WEB)).code == 0
    eventually(lambda: set(fleet.desired()) == {"d1.web", "d2.web"}, timeout=20)
    fleet.report(["d1"], "web", Phase.RUNNING)
    fleet.report(["d2"], "web", Phase.FAILED, message="port 8080 is taken")

    table = ctl("devices")
    assert table.code == 0, table.err
    rows = {line.split()[0]: line.split() for line in table.out.splitlines()[1:]}
    assert rows["d1"][1:3] == ["site=lab", "yes"]
    assert rows["d1"][-1] == "web=Running"
    assert rows["d2"][-1] == "web=Failed"
    assert rows["d3"][1:3] == ["-", "no"]
    assert "5m ago" in table.out  # d3's heartbeat, 300 s old

    data = {d["device"]: d for d in ctl("devices", "-o", "json").json()}
    assert data["d1"]["labels"] == {"site": "lab"}
    assert data["d1"]["online"] is True
    assert data["d3"]["online"] is False
    assert data["d3"]["heartbeat_age_s"] >= 300
    assert data["d2"]["deployments"] == {"web": "Failed"}


def test_deployments_and_status_show_aggregate_and_failure_messages(
    ctl: Callable[..., Result],
    fleet: Fleet,
    start_operator: Callable[..., Operator],
    manifest: Callable[..., str],
) -> None:
    fleet.join(["d1", "d2", "d3"], {"site": "lab"})
    start_operator(liveness_timeout=60)
    assert ctl("apply", "-f", manifest(WEB)).code == 0
    eventually(lambda: len(fleet.desired()) == 3, timeout=20)
    fleet.report(["d1"], "web", Phase.RUNNING)
    fleet.report(["d2"], "web", Phase.FAILED, message="image not found: localhost/busybox:test")

    def counts() -> dict[str, Any]:
        row: dict[str, Any]
        (row,) = ctl("deployments", "-o", "json").json()
        assert (row["running"], row["failed"], row["pending"]) == (1, 1, 1)
        return row

    row = eventually(counts, timeout=10)
    assert (row["namespace"], row["name"], row["targeted"]) == ("default", "web", 3)
    assert row["reason"] == "DevicesFailing"
    table = ctl("deployments").out.splitlines()
    assert table[0].split() == [
        "NAMESPACE", "NAME", "TARGETED", "RUNNING", "PENDING", "FAILED", "UNREACHABLE", "READY",
    ]  # fmt: skip
    assert table[1].split()[:7] == ["default", "web", "3", "1", "1", "1", "0"]

    status = ctl("status", "web")
    assert status.code == 0, status.err
    assert "default/web: 1/3 running, 1 pending, 1 failed, 0 unreachable" in status.out
    lines = {line.split()[0]: line for line in status.out.splitlines()}
    assert lines["d1"].split()[1:3] == ["running", "Running"]
    assert lines["d2"].split()[1:3] == ["failed", "Failed"]
    assert lines["d2"].endswith("image not found: localhost/busybox:test")
    assert lines["d3"].split()[1:3] == ["pending", "-"]
    devices = {d["device"]: d for d in ctl("status", "web", "-o", "json").json()["devices"]}
    assert devices["d2"]["message"] == "image not found: localhost/busybox:test"
    assert devices["d1"]["desired_revision"] == devices["d1"]["reported_revision"]


def test_status_of_a_missing_deployment_fails_with_its_name(ctl: Callable[..., Result]) -> None:
    result = ctl("status", "nope", "-n", "shop")
    assert result.code == 1
    assert "shop/nope" in result.err
    assert "not found" in result.err
