"""The dashboard served by real processes: ``fleetctl dashboard`` and ``fleet-operator
--dashboard-address``, each SIGKILLed mid-run and started again.

Neither keeps state of its own: started again, each rebuilds the page from the buckets
and the Deployments (what a viewer sees after a crash is the fleet, not a blank page).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.fixtures.kube import KubeCluster
from tests.fixtures.nats import NatsServer, free_port
from tests.operator.process import operator_process
from tests.operator.sim import SCORE, Fleet, eventually

from .conftest import VIEWER
from .test_live_page import rows, text, wait

WAIT = 60.0


@contextlib.contextmanager
def fleetctl_dashboard(nats: NatsServer, kube: KubeCluster) -> Iterator[tuple[Any, str]]:
    """``fleetctl dashboard`` running; (its process, the URL it printed)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet.cli.fleetctl.main", "dashboard", "--nats-url", nats.url,
         "--kube-url", kube.url, "--liveness-timeout", "600"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in proc.stdout or ():
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        while True:
            line = lines.get(timeout=WAIT)  # queue.Empty: it never printed its URL
            if line.startswith("dashboard: "):
                yield proc, line.split(" ", 1)[1].strip()
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        reader.join(10)
        if proc.stdout is not None:
            proc.stdout.close()


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                    timeout=30) as response:  # fmt: skip
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()  # its socket: a ResourceWarning otherwise, in a later test
        return exc.code


def test_fleetctl_dashboard_needs_its_token_and_survives_a_kill(
    browser: Any, nats_server: NatsServer, kube: KubeCluster, fleet: Fleet
) -> None:
    fleet.join(["pi-lab-1"], {"site": "lab"})
    fleet.join(["pi-shop-1", "pi-shop-2"], {"site": "shop"})
    kube.create_deployment("ns", "hello-web", selector={"matchLabels": {"site": "lab"}},
                           score=SCORE)  # fmt: skip
    with fleetctl_dashboard(nats_server, kube) as (proc, url):
        base, token = url.split("/?token=")
        assert base.startswith("http://127.0.0.1:")
        assert status_of(base + "/api/overview") == 401
        assert status_of(base + "/") == 401
        assert status_of(base + "/api/overview?token=not-the-printed-one") == 401
        assert status_of(base + "/api/overview", {"Authorization": f"Bearer {token}"}) == 200
        browser.get(url)
        wait(browser, lambda b: rows(b) == ["pi-lab-1", "pi-shop-1", "pi-shop-2"])
        wait(browser, lambda b: text(b, '.deployment[data-name="ns/hello-web"]') != "")
        os.kill(proc.pid, signal.SIGKILL)  # a crash mid-run
        assert proc.wait(timeout=30) == -signal.SIGKILL
    with fleetctl_dashboard(nats_server, kube) as (proc, url):
        assert url.split("/?token=")[1] != token  # a new token each run
        browser.get(url)
        wait(browser, lambda b: rows(b) == ["pi-lab-1", "pi-shop-1", "pi-shop-2"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=WAIT) == 0  # stopped cleanly: watches and server


def test_the_operator_serves_it_and_serves_it_again_after_a_kill(
    nats_server: NatsServer, kube: KubeCluster, fleet: Fleet, tmp_path: Path
) -> None:
    reviews = kube.server.emulator.reviews  # type: ignore[union-attr]
    reviews.add_token(VIEWER, user="alice", allow=(("fleet.nationtech.io", "*", "list"),))
    fleet.join(["pi-lab-1", "pi-lab-2"], {"site": "lab"})
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/devices?selector=site%3Dlab"
    auth = {"Authorization": f"Bearer {VIEWER}"}

    def total() -> int:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=auth),
                                        timeout=10) as response:  # fmt: skip
                return int(json.loads(response.read())["total"])
        except OSError:  # not serving yet (refused), or a 5xx while it starts
            return -1

    extra = ("--dashboard-address", f"127.0.0.1:{port}", "--metrics-address", "off")
    with operator_process(nats_server.url, kube.url, tmp_path / "op.log", extra=extra) as proc:
        eventually(lambda: total() == 2, timeout=WAIT)
        assert status_of(url) == 401
        proc.kill()  # SIGKILL mid-run
        proc.wait(timeout=30)
    with operator_process(nats_server.url, kube.url, tmp_path / "op.log", extra=extra):
        eventually(lambda: total() == 2, timeout=WAIT)
    assert "serving the dashboard on http://127.0.0.1:" in (tmp_path / "op.log").read_text()
