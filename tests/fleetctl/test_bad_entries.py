"""The real ``fleetctl devices`` and ``fleetctl status`` over buckets full of bad entries:
deep-nested, oversized, wrong-typed, foreign ids, bad keys. They exit 0 and show the good
devices, and nothing of the bad ones."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from fleet.actors.operator.app import Operator
from fleet.contracts import Phase
from fleet.contracts.keys import ALL_BUCKETS
from tests.fixtures.kube import KubeCluster
from tests.fixtures.nats import NatsServer
from tests.operator.sim import Fleet, eventually, now

from .conftest import WEB, Result

DEEP = b"[" * 1000 + b"]" * 1000
HUGE = b'{"device_id":"d1","pad":"' + b"x" * 500_000 + b'"}'


def bad_entries() -> list[tuple[str, str, bytes]]:
    at = now().isoformat()
    wrong = json.dumps({"device_id": 5, "at": 1, "seq": "x", "labels": [1],
                        "phase": 3, "deployment": {}}).encode()  # fmt: skip
    rows = []
    for bucket, keys in {
        "device-heartbeat": ["heartbeat.bad1", "heartbeat.bad2", "heartbeat.bad3"],
        "device-info": ["info.bad1", "info.bad2", "info.bad3"],
        "device-state": ["state.bad1.web", "state.bad2.web", "state.bad3.web"],
        "desired-state": ["bad1.other", "bad2.other", "bad3.other"],
    }.items():
        rows += [(bucket, keys[0], DEEP), (bucket, keys[1], HUGE), (bucket, keys[2], wrong)]
    rows += [
        ("device-heartbeat", "heartbeat.spoof",
         b'{"device_id":"d1","at":"%s","seq":1}' % at.encode()),
        ("device-heartbeat", "heartbeat.a.b", b"{}"),
        ("device-info", "info.z", b"\xff\x00"),
        ("device-state", "state.d1.web.x", b"{}"),
        ("device-state", "state.spoof.web",
         b'{"device_id":"d2","deployment":"web","phase":"Failed","desired_revision":1,'
         b'"updated_at":"%s"}' % at.encode()),
    ]  # fmt: skip
    return rows


def fleetctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet.cli.fleetctl.main", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.timeout(120)
def test_devices_and_status_survive_every_bad_entry(
    ctl: Callable[..., Result],
    fleet: Fleet,
    start_operator: Callable[..., Operator],
    manifest: Callable[..., str],
    *,
    nats_server: NatsServer,
    kube: KubeCluster,
) -> None:
    fleet.join(["d1", "d2"], {"site": "lab"})
    start_operator(liveness_timeout=60)
    assert ctl("apply", "-f", manifest(WEB)).code == 0
    eventually(lambda: {"d1.web", "d2.web"} <= set(fleet.desired()), timeout=20)
    fleet.report(["d1"], "web", Phase.RUNNING)
    fleet.report(["d2"], "web", Phase.FAILED, message="port taken")

    async def lift() -> None:  # as on a bucket made before values had a bound
        for bucket in ALL_BUCKETS:
            info = await fleet.bus.js.stream_info(f"KV_{bucket}")
            await fleet.bus.js.update_stream(info.config.evolve(max_msg_size=-1))

    fleet.run(lift())
    for bucket, key, value in bad_entries():
        fleet.put_raw(bucket, key, value)

    where = ("--nats-url", nats_server.url, "--kube-url", kube.url, "--liveness-timeout", "60")
    devices = fleetctl("devices", *where)
    assert devices.returncode == 0, devices.stderr
    assert devices.stderr == ""
    rows = {line.split()[0]: line.split() for line in devices.stdout.splitlines()[1:]}
    assert set(rows) == {"d1", "d2"}, devices.stdout
    assert rows["d1"][-1] == "web=Running"
    assert rows["d2"][-1] == "web=Failed"
    data = {d["device"]: d for d in json.loads(fleetctl("devices", "-o", "json", *where).stdout)}
    assert set(data) == {"d1", "d2"}

    status = fleetctl("status", "web", *where)
    assert status.returncode == 0, status.stderr
    lines = {line.split()[0]: line for line in status.stdout.splitlines() if line.strip()}
    assert lines["d1"].split()[1:3] == ["running", "Running"]
    assert lines["d2"].split()[1:3] == ["failed", "Failed"]
    assert not {"spoof", "bad1", "bad2", "bad3"} & set(lines), status.stdout
    as_json = json.loads(fleetctl("status", "web", "-o", "json", *where).stdout)
    shown = {d["device"] for d in as_json["devices"]}
    assert {"d1", "d2"} <= shown
    assert not {"spoof"} & shown
