"""Run the real ``fleet-agent`` binary against a test world, and kill it like a power cut."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.agent.conftest import AgentWorld, wait_for

CONFIG = """
device_id = "{device}"
[labels]
site = "lab"
[nats]
urls = ["{url}"]
[podman]
socket = "{socket}"
[agent]
heartbeat_interval_s = 0.5
state_dir = "{state}"
resync_interval_s = 1
stop_timeout_s = 2
"""


class AgentProcess:
    """One ``python -m fleet.cli.agent`` process; its log (stderr) goes to a file."""

    def __init__(
        self, world: AgentWorld, root: Path, *, name: str = "agent", extra: str = ""
    ) -> None:
        self.state_dir = root / f"{name}-state"
        self.config = root / f"{name}.toml"
        self.log_path = root / f"{name}.log"
        self.config.write_text(
            CONFIG.format(
                device=world.device,
                url=world.nats.url,
                socket=world.podman.socket_url,
                state=self.state_dir,
            )
            + extra
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, FLEET_AGENT_CONFIG=str(self.config), FLEET_LOG_LEVEL="INFO")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fleet.cli.agent"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as a crash or a power cut."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, text: str, *, timeout: float = 20.0) -> str:
        return str(wait_for(lambda: text in self.log() and self.log(), timeout=timeout, what=text))
