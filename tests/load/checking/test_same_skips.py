"""Forged and garbled entries are skipped the same way by ``fleetctl`` and the checker.

Pure: the same bucket snapshots go to fleetctl's rows and to the checker's view. A key and
a value naming different devices (or deployments), a value that breaks the contract and a
key that is no key of its bucket are each skipped by both, and what is left is the same
fleet for both. A desired entry is the operator's own write and only its key counts: one
whose value is garbled still targets its device, for both.
"""

from __future__ import annotations

import datetime as dt

from fleet.actors.agent.reporting import DeviceEntries
from fleet.cli.fleetctl.view import device_rows, status_rows
from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeviceId,
    Phase,
)
from fleet.devtools.simprofile import SIMULATED_INVENTORY
from fleet.runtime.nats.kv import KvEntry
from loadtest.check import view_of
from loadtest.expected import Report

AT = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
WEB = DeploymentName("web")
DEEP = b"[" * 1000 + b"]" * 1000


def device(name: str) -> DeviceEntries:
    return DeviceEntries(device_id=DeviceId(name), instance_id="i1", clock=lambda: AT)


def snapshot(bucket: str, *entries: tuple[str, bytes]) -> dict[str, KvEntry]:
    return {
        key: KvEntry(bucket=bucket, key=key, value=value, revision=n)
        for n, (key, value) in enumerate(entries, start=10)
    }


def report(name: str, phase: Phase, revision: int, *, key: str | None = None) -> tuple[str, bytes]:
    built = device(name).report(deployment=WEB, phase=phase, desired_revision=revision)
    assert built is not None
    return (key or built[0], built[1])


def buckets() -> dict[str, dict[str, KvEntry]]:
    lab = {"site": "lab"}
    d1, d2 = device("d1"), device("d2")
    return {
        BUCKET_DEVICE_INFO: snapshot(
            BUCKET_DEVICE_INFO,
            d1.info(labels=lab, inventory=SIMULATED_INVENTORY),
            d2.info(labels=lab, inventory=SIMULATED_INVENTORY),
            ("info.spoof", d1.info(labels={"site": "x"}, inventory=SIMULATED_INVENTORY)[1]),
            ("info.bad", b"\xff\x00"),
            ("info.a.b", d1.info(labels=lab, inventory=SIMULATED_INVENTORY)[1]),
        ),
        BUCKET_DEVICE_HEARTBEAT: snapshot(
            BUCKET_DEVICE_HEARTBEAT,
            d1.heartbeat(),
            d2.heartbeat(),
            ("heartbeat.spoof", d1.heartbeat()[1]),
            ("heartbeat.bad", DEEP),
            ("heartbeat.a.b", b"{}"),
        ),
        BUCKET_DESIRED_STATE: snapshot(
            BUCKET_DESIRED_STATE,
            ("d1.web", b"{}"),
            ("d2.web", b"{}"),
            ("d3.web", b"garbled: still the operator's entry"),
            ("a.b.c", b"{}"),
        ),
        BUCKET_DEVICE_STATE: snapshot(
            BUCKET_DEVICE_STATE,
            report("d1", Phase.RUNNING, 10),
            report("d2", Phase.FAILED, 11),
            report("d2", Phase.RUNNING, 11, key="state.spoof.web"),  # names d2 under spoof
            report("d1", Phase.FAILED, 10, key="state.d1.other"),  # names web under other
            ("state.bad.web", b'{"device_id": 5, "phase": 3}'),
            ("state.d1.web.x", b"{}"),
        ),
    }


def test_fleetctl_and_the_checker_skip_the_same_entries_and_see_the_same_fleet() -> None:
    data = buckets()
    rows = device_rows(data, liveness_timeout=1e9, at=AT)
    view = view_of(
        infos=data[BUCKET_DEVICE_INFO],
        beats=data[BUCKET_DEVICE_HEARTBEAT],
        desired=data[BUCKET_DESIRED_STATE],
        states=data[BUCKET_DEVICE_STATE],
    )

    assert [r["device"] for r in rows] == ["d1", "d2"]
    assert set(view.labels) == set(view.beats) == {"d1", "d2"}
    assert {d: dict(labels) for d, labels in view.labels.items()} == {
        r["device"]: r["labels"] for r in rows
    }
    assert view.reports == {
        ("d1", "web"): Report(phase="Running", desired_revision=10),
        ("d2", "web"): Report(phase="Failed", desired_revision=11),
    }
    assert {r["device"]: r["deployments"] for r in rows} == {
        "d1": {"web": "Running"},
        "d2": {"web": "Failed"},
    }
    assert view.desired == {("d1", "web"): 10, ("d2", "web"): 11, ("d3", "web"): 12}

    status = status_rows(
        name="web",
        desired=data[BUCKET_DESIRED_STATE],
        reports=data[BUCKET_DEVICE_STATE],
        heartbeats=data[BUCKET_DEVICE_HEARTBEAT],
        liveness_timeout=1e9,
        at=AT,
    )
    by_device = {r["device"]: r for r in status}
    assert set(by_device) == {"d1", "d2", "d3"}
    assert [by_device[d]["class"] for d in ("d1", "d2", "d3")] == [
        "running",
        "failed",
        "unreachable",
    ]
    assert by_device["d3"]["desired_revision"] == view.desired[("d3", "web")]
