"""``fleetctl logs -f`` as a person runs it (a process, Ctrl-C to stop) streams a real
container's output from a real agent; ``fleetctl describe device`` shows it."""

from __future__ import annotations

import contextlib
import io
import json
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from fleet.cli.fleetctl.main import main
from tests.agent.conftest import AgentWorld, running
from tests.budgets import budget

from .conftest import ticker

pytestmark = pytest.mark.timeout(120)


def test_fleetctl_logs_follow_streams_new_lines_until_ctrl_c(world: AgentWorld) -> None:
    world.start_agent()
    revision = world.put_desired("app", ticker(image=world.podman.image, every=0.3))
    world.wait_state("app", lambda s: running(s, revision), timeout=60)
    argv = [sys.executable, "-m", "fleet.cli.fleetctl.main", "logs", world.device, "app", "-f",
            "--tail", "1", "--nats-url", world.nats.url]  # fmt: skip
    lines: queue.Queue[tuple[float, str]] = queue.Queue()
    got: list[tuple[float, str]] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put((time.monotonic(), line.rstrip("\n")))

        reader = threading.Thread(target=read, name="fleetctl-stdout")
        reader.start()
        try:
            deadline = time.monotonic() + budget(45)
            while len(got) < 12 and time.monotonic() < deadline and proc.poll() is None:
                with contextlib.suppress(queue.Empty):
                    got.append(lines.get(timeout=1))
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=budget(20))
            reader.join(timeout=10)
        stderr = proc.stderr.read() if proc.stderr else ""
    assert len(got) >= 12, (got, stderr)
    ticks = [int(text.split()[1]) for _, text in got]
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks))), ticks  # in order, none lost
    assert got[-1][0] - got[0][0] >= 2.0  # they arrived over time: it follows
    assert code == 130
    assert "Traceback" not in stderr, stderr


def test_fleetctl_describe_device(world: AgentWorld, capsys: pytest.CaptureFixture[str]) -> None:
    world.start_agent(world.config(labels={"site": "lab"}))
    revision = world.put_desired("app", ticker(image=world.podman.image))
    world.wait_state("app", lambda s: running(s, revision), timeout=60)
    out = io.StringIO()
    code = main(["describe", "device", world.device, "--nats-url", world.nats.url], out=out)
    assert code == 0, capsys.readouterr().err
    text = out.getvalue()
    assert f"Device:         {world.device}" in text
    assert "Labels:         site=lab" in text
    assert f"app:  Running, revision {revision}" in text
    assert "Container app: running" in text
    out = io.StringIO()
    args = ["describe", "device", world.device, "-o", "json", "--nats-url", world.nats.url]
    assert main(args, out=out) == 0
    described = json.loads(out.getvalue())
    assert described["device_id"] == world.device
    assert described["deployments"][0]["phase"] == "Running"
