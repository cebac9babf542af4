"""``fleetctl logs`` and ``fleetctl describe device`` with device identity on: the real
agent, enrolled by a token and connected as itself, answers fleetctl's own read-only
identity over TLS (its response permission), and a device's credentials cannot ask."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import sys
import time

import nats
import nats.errors
import pytest

from fleet.contracts import DeviceId
from fleet.runtime.nats import subjects
from fleet.runtime.nats.permissions import device_permissions
from tests.budgets import budget

from .conftest import NAMESPACE, IdentityWorld, wait_for

pytestmark = pytest.mark.timeout(150)

TICKER = "trap 'exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.3; done"


def test_fleetctl_reads_an_enrolled_devices_logs_and_a_device_cannot(
    identity_world: IdentityWorld,
) -> None:
    world = identity_world
    assert world.nats is not None
    device = "e2e-logs-1"
    token = world.fleetctl("token", "create", "--uses", "1", "--label", "site=e2e").strip()
    agent = world.start_agent(device, home="device", token=token)
    wait_for(agent.creds.exists, timeout=45, what="device.creds written")
    world.kube.create_deployment(
        NAMESPACE, "web", selector={"matchLabels": {"site": "e2e"}},
        score={"type": "podman", "containers": [{
            "name": "main", "image": world.podman.image, "command": ["sh", "-c", TICKER]}]},
    )  # fmt: skip
    wait_for(lambda: world.aggregate("web").get("running") == 1, timeout=60, what="web running")
    nats_args = ["--nats-url", world.nats.url, "--nats-credentials",
            str(world.auth_dir / "fleetctl.creds"), "--nats-ca", str(world.ca.ca_cert)]  # fmt: skip

    def fleetctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fleet.cli.fleetctl.main", *args, *nats_args],
            capture_output=True, text=True, timeout=budget(60), check=False,
        )  # fmt: skip

    logs = wait_for(
        lambda: (done := fleetctl("logs", device, "web", "--tail", "3")).returncode == 0
        and len(done.stdout.splitlines()) == 3 and done,
        timeout=30, what="three lines of the container's output",
    )  # fmt: skip
    assert all(line.startswith("tick ") for line in logs.stdout.splitlines()), logs.stdout
    described = fleetctl("describe", "device", device)
    assert described.returncode == 0, described.stderr
    assert "Labels:         site=e2e" in described.stdout
    assert "web:  Running" in described.stdout
    assert "Container main: running" in described.stdout

    # The device's own credentials: it may not ask itself (nor any device) anything.
    async def ask_as_the_device() -> list[str]:
        assert world.nats is not None
        refusals: list[str] = []

        async def on_error(exc: Exception) -> None:
            refusals.append(str(exc).lower())

        client = await nats.connect(
            world.nats.url, user_credentials=str(agent.creds),
            tls=ssl.create_default_context(cafile=str(world.ca.ca_cert)),
            inbox_prefix=device_permissions(DeviceId(device)).inbox_prefix, error_cb=on_error,
            allow_reconnect=False, connect_timeout=2,
        )  # fmt: skip
        try:
            subject = subjects.device_request(DeviceId(device), "describe")
            with contextlib.suppress(nats.errors.TimeoutError, nats.errors.NoRespondersError):
                await client.request(subject, b"{}", timeout=1)
                refusals.append("answered")
            deadline = time.monotonic() + budget(15)
            while not any("permissions violation" in r for r in refusals):
                assert time.monotonic() < deadline, refusals
                await asyncio.sleep(0.05)
            return refusals
        finally:
            await client.close()

    refusals = world.loop.run(ask_as_the_device(), timeout=budget(30))
    assert "answered" not in refusals
