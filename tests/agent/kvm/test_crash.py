"""SIGKILL of the agent process mid-fetch and mid-boot: the restarted agent adopts or
repairs what the first one left (the same domain, not a second one), and leaves no orphan
domain, overlay, seed or half-fetched artifact."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.conformance.adapters import KvmAdapter
from tests.agent.conformance.kit import TIMEOUT, Bench, is_phase

CONFIG = """
device_id = "{device}"
[labels]
site = "lab"
[nats]
urls = ["{url}"]
[podman]
socket = "unix:///nonexistent/simulated.sock"
[agent]
heartbeat_interval_s = 1.0
resync_interval_s = 2.0
state_dir = "{state}"
[kvm]
uri = "{uri}"
cache_dir = "{cache}"
artifact_dirs = ["{guest_dir}"]
"""
CHUNK = 256 * 1024


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.agent.kvm.run_agent", str(config)],
            env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def wait_for(check: object, *, what: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    assert callable(check)
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"{what} never happened\n{log.read_text()}"
        time.sleep(0.02)


@pytest.fixture
def agent_config(bench: Bench, kvm_adapter: KvmAdapter, tmp_path: Path) -> Path:
    config = tmp_path / "agent.toml"
    config.write_text(
        CONFIG.format(
            device=bench.device, url=bench.nats_url, state=tmp_path / "state",
            uri=kvm_adapter.uri, cache=kvm_adapter.cache,
            guest_dir=kvm_adapter.guest.kernel.parent,
        )
    )  # fmt: skip
    kvm_adapter.devices.add(bench.device)  # its close() removes what the agents left
    return config


class SlowFile(http.server.BaseHTTPRequestHandler):
    """Serves ``path`` a chunk at a time, slowly: a fetch that a SIGKILL lands in."""

    path_served: Path
    sent = threading.Event()

    def do_GET(self) -> None:
        data = self.path_served.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            for offset in range(0, len(data), CHUNK):
                self.wfile.write(data[offset : offset + CHUNK])
                self.wfile.flush()
                self.sent.set()
                time.sleep(0.05)
        except OSError:
            return  # the agent was killed mid-fetch

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def slow_server(kvm_adapter: KvmAdapter) -> Iterator[tuple[str, threading.Event]]:
    sent = threading.Event()
    handler = type("Handler", (SlowFile,), {"path_served": kvm_adapter.guest.kernel, "sent": sent})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="slow-http", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/vmlinuz", sent
    server.shutdown()
    server.server_close()
    thread.join(10)


def leftovers(kvm_adapter: KvmAdapter) -> tuple[list[str], list[str]]:
    """(domain folders in the cache, half-fetched artifacts)."""
    domains = sorted(p.name for p in (kvm_adapter.cache / "domains").iterdir())
    parts = sorted(p.name for p in (kvm_adapter.cache / "artifacts").glob("*.part"))
    return domains, parts


def test_sigkill_mid_fetch_then_restart_fetches_whole_and_boots_once(
    bench: Bench,
    kvm_adapter: KvmAdapter,
    agent_config: Path,
    slow_server: tuple[str, threading.Event],
    tmp_path: Path,
) -> None:
    url, sent = slow_server
    score = kvm_adapter.score(1)
    score["boot"]["kernel"]["url"] = url  # with its sha256: the restart's copy is checked
    log = tmp_path / "agent.log"
    revision = bench.put("web", score)
    proc = start(agent_config, log)
    try:
        wait_for(sent.is_set, what="the fetch began", proc=proc, log=log)
        kill(proc)
        assert kvm_adapter._domains(bench.device, "web") == []  # killed before any define
        proc = start(agent_config, log)
        bench.wait_report("web", is_phase("Running", revision), what="Running after restart")
        assert len(kvm_adapter.units(bench.device, "web")) == 1
        [name] = kvm_adapter._domains(bench.device, "web")
        assert leftovers(kvm_adapter) == ([name], [])
    finally:
        kill(proc)


def test_sigkill_mid_boot_then_restart_adopts_the_domain(
    bench: Bench, kvm_adapter: KvmAdapter, agent_config: Path, tmp_path: Path
) -> None:
    log = tmp_path / "agent.log"
    revision = bench.put("web", kvm_adapter.score(1))
    proc = start(agent_config, log)
    try:
        wait_for(
            lambda: kvm_adapter._domains(bench.device, "web"),
            what="the domain defined", proc=proc, log=log,
        )  # fmt: skip
        kill(proc)  # defined, booting: the guest does not answer yet
        assert not any(is_phase("Running", revision)(s) for s in bench.seen("web"))
        [name] = kvm_adapter._domains(bench.device, "web")
        booted = kvm_adapter.units(bench.device, "web")  # {} if killed before its start
        mark = len(bench.seen("web"))
        proc = start(agent_config, log)
        bench.wait_report("web", is_phase("Running", revision), what="Running after restart")
        assert kvm_adapter._domains(bench.device, "web") == [name]  # the same, no second
        running = kvm_adapter.units(bench.device, "web")
        assert len(running) == 1
        assert leftovers(kvm_adapter) == ([name], [])
        after = [s.phase.value for s in bench.seen("web", since=mark)]
        print(f"phases after the restart: {after}")
        if booted:  # adopted: the first agent's boot is kept, not booted again
            assert running == booted
    finally:
        kill(proc)
