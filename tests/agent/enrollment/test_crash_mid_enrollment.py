"""SIGKILL of the agent process after its key is written and before it is approved: the
restart asks with the same key, and enrollment completes once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from fleet.runtime.nats.device_key import DeviceKeyStore

from .conftest import SCORE, EnrollWorld, wait_for

CONFIG = """
device_id = "{device}"
[labels]
site = "lab"
[nats]
urls = ["{url}"]
ca = "{ca}"
[podman]
socket = "unix:///nonexistent/simulated.sock"
[agent]
heartbeat_interval_s = 0.5
state_dir = "{state}"
[enrollment]
bootstrap_credentials = "{bootstrap}"
"""


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.agent.enrollment.run_agent", str(config)],
            env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip


def test_sigkill_mid_enrollment_then_restart_uses_the_same_key(world: EnrollWorld) -> None:
    world.operator.enroll_script = ["pending"]
    world.operator.retry_after_s = 0.2
    config = world.root / "agent.toml"
    config.write_text(
        CONFIG.format(
            device=world.device, url=world.fleet.server.url, ca=world.fleet.ca.ca_cert,
            state=world.state_dir, bootstrap=world.fleet.bootstrap_creds,
        )
    )  # fmt: skip
    log = world.root / "agent.log"
    store = DeviceKeyStore(world.state_dir)
    proc = start(config, log)
    try:
        wait_for(lambda: len(world.operator.enrollments) >= 2, timeout=30, what="pending asks")
        seed = store.seed_path.read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert not store.credentials_path.exists()

        world.operator.enroll_script = ["approved"]
        asked = len(world.operator.enrollments)
        proc = start(config, log)
        wait_for(store.credentials_path.exists, timeout=30, what="enrolled")
        revision = world.put_desired("web", SCORE)
        world.wait_running("web", revision)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
    assert store.seed_path.read_text() == seed
    assert {r.public_key for r in world.operator.enrollments} == {
        world.operator.enrollments[0].public_key
    }
    assert len(world.operator.approved) == 1  # enrollment completed once
    assert len(world.operator.enrollments) == asked + 1
    assert "Traceback" not in log.read_text()
