"""The processes a load run starts: the Kubernetes API emulator, fleet-operator, locust.

Why it exists: ``loadtest/run`` brings up a whole system on 127.0.0.1 and must take it
down again whatever happens; each process here is started with its output in the run's
work directory, is ready when it says so, and stops on :meth:`Process.stop` (SIGTERM,
then SIGKILL). It also reads a process's peak RSS and CPU-seconds from ``/proc`` for
the figures report.

What it must never do: listen or connect anywhere but 127.0.0.1, or leave a child
running after :meth:`Process.stop` (the run stops every one in ``finally``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
CRD_DIR = REPO / "deploy" / "crds"
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    peak_rss_mb: float
    cpu_s: float


def usage_of(pid: int) -> Usage | None:
    """Peak RSS (VmHWM) and user+system CPU seconds of a live process, from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    hwm_kb = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0
    )
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
    return Usage(peak_rss_mb=hwm_kb / 1024.0, cpu_s=cpu)


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                continue
    return out


class TreeUsage:
    """The last usage seen of every process of a tree (locust and its --processes workers)."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._seen: dict[int, Usage] = {}

    def sample(self) -> None:
        for pid in tree_pids(self._pid):
            usage = usage_of(pid)
            if usage is not None:
                self._seen[pid] = usage

    @property
    def cpu_s(self) -> float:
        return sum(u.cpu_s for u in self._seen.values())

    @property
    def peak_rss_mb(self) -> float:
        return max((u.peak_rss_mb for u in self._seen.values()), default=0.0)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


class Process:
    """One child process with its output in ``log``."""

    def __init__(
        self, *, name: str, argv: list[str], log: Path, stdin: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.name = name
        self.argv = argv
        self.log = log
        self._out: IO[bytes] = log.open("wb")
        self.proc = subprocess.Popen(
            argv,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=stdin,
            env={**child_env(), **(env or {})},
            cwd=str(REPO),
            start_new_session=True,  # its own process group: stop() reaches its children
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for_line(self, text: str, *, timeout: float) -> str:
        """Wait until ``text`` appears in the log; return that line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log.read_text(errors="replace").splitlines():
                if text in line:
                    return line
            if not self.alive():
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no {text!r} in {timeout}s:\n{self.tail()}")

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self, *, timeout: float = 15.0) -> int | None:
        """Stop the process and whatever it started (locust's ``--processes`` workers).

        Seen before: a stopped 100,000-device run left locust's two workers running, at
        full CPU, into the next run.
        """
        if self.alive():
            self._signal_group(signal.SIGCONT)
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(timeout)
        deadline = time.monotonic() + 5.0
        while self._signal_group(0) and time.monotonic() < deadline:
            time.sleep(0.1)  # children still exiting after their parent
        self._signal_group(signal.SIGKILL)
        self._out.close()
        return self.proc.returncode

    def _signal_group(self, sig: int) -> bool:
        """Signal the process's group; False once no process of it is left."""
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class KubeEmulatorProcess(Process):
    """The Kubernetes API emulator (``fleet.devtools.kube_emulator``, a development
    stand-in) serving the fleet CRDs on a free port, in its own process."""

    def __init__(self, *, log: Path) -> None:
        super().__init__(
            name="kube-emulator",
            argv=[sys.executable, "-m", "fleet.devtools.kube_emulator", "--crds", str(CRD_DIR)],
            log=log,
            stdin=subprocess.PIPE,
        )
        line = self.wait_for_line("READY ", timeout=30)
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def stop(self, *, timeout: float = 15.0) -> int | None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # the emulator serves until its stdin closes
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        return super().stop(timeout=timeout)


class ExistingApi:
    """A Kubernetes API that already runs (``--kube-url``): nothing to start or stop; the
    run's namespace must hold no Deployment yet, since the verdict reads it whole."""

    pid: int | None = None

    def __init__(self, url: str, *, namespace: str) -> None:
        from loadtest.check import list_deployments

        self.url = url.rstrip("/")
        found = list_deployments(self.url, namespace)
        if found:
            names = ", ".join(d["metadata"]["name"] for d in found[:5])
            raise SystemExit(
                f"loadtest: namespace {namespace} of {self.url} already holds {len(found)} "
                f"Deployments ({names}...): the verdict would count them; delete them first"
            )


def operator_argv() -> list[str]:
    """``fleet-operator`` from this venv if installed, else the same entry point by module."""
    script = Path(sys.executable).parent / "fleet-operator"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "fleet.cli.operator"]


def locust_argv() -> list[str]:
    script = Path(sys.executable).parent / "locust"
    return [str(script)] if script.exists() else [sys.executable, "-m", "locust"]
