"""Child processes of the local demo: started in their own process group, logged, stopped.

Why it exists: the demo runs ``fleet-operator`` and three ``fleet-agent``s as real
processes. Each gets its own process group, so the terminal's Ctrl-C reaches only the
demo, which then stops them in order (agents first, so none reports on a fleet that is
going away). Output goes to one log file per process.

What it must never do: leave a child running after :meth:`Child.stop` returns.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


class Child:
    """One child process with its log file."""

    def __init__(
        self, *, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                process_group=0,  # Ctrl-C in the terminal is the demo's to handle
            )

    def stop(self, *, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` s; returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        return proc.returncode

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_path.exists():
            return "(no output)"
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)
