"""An update never takes down what runs before its replacement can be made."""

from __future__ import annotations

import http.client
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from tests.agent.conftest import (
    AgentWorld,
    RecordingRuntime,
    fetch,
    httpd_score,
    running,
    wait_for,
)
from tests.fixtures.podman import free_port

pytestmark = pytest.mark.podman


@dataclass
class Poller:
    """GETs a page every 20 ms on its own thread; counts what failed and the longest gap
    between two answers. ``timeout``: short to measure a gap (a SYN dropped while no
    container holds the port is otherwise retransmitted after 1 s and then succeeds),
    long to prove nothing failed (under CPU load a short one fails spuriously)."""

    port: int
    timeout: float = 2.0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    longest_gap: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.is_set():
            try:
                url = f"http://127.0.0.1:{self.port}/"
                with urllib.request.urlopen(url, timeout=self.timeout) as r:
                    r.read()
                now = time.monotonic()
                self.longest_gap = max(self.longest_gap, now - last_ok)
                last_ok, self.ok = now, self.ok + 1
            except (OSError, http.client.HTTPException) as exc:  # cut mid-answer too
                self.failures.append(repr(exc))
            self._stop.wait(0.02)


@pytest.fixture
def poll() -> Iterator[Callable[..., Poller]]:
    pollers: list[Poller] = []
    threads: list[threading.Thread] = []

    def start(port: int, *, timeout: float = 2.0) -> Poller:
        poller = Poller(port, timeout=timeout)
        thread = threading.Thread(target=poller.run, name=f"poll-{port}")
        thread.start()
        pollers.append(poller)
        threads.append(thread)
        return poller

    yield start
    for poller in pollers:
        poller._stop.set()
    for thread in threads:
        thread.join(5)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("registry", ["missing-tag", "registry-down"])
def test_a_failed_pull_keeps_the_service_answering_and_says_what_runs(
    world: AgentWorld, poll: Callable[..., Poller], registry: str
) -> None:
    runtime = RecordingRuntime(url=world.podman.socket_url)
    world.start_agent(runtime=runtime)
    port = free_port()
    good = world.put_desired("web", httpd_score(image=world.podman.image, port=port))
    world.wait_state("web", lambda s: running(s, good))
    before = world.container("web")
    assert before is not None
    poller = poll(port)
    if registry == "missing-tag":
        image, phase = f"{world.podman.registry}/busybox:no-such-tag", "Failed"
    else:
        image, phase = world.podman.push_tag("later"), "Pulling"
        world.podman.stop_registry()
    update = world.put_desired("web", httpd_score(image=image, port=port, env={"V": "2"}))
    state = world.wait_state(
        "web", lambda s: s.desired_revision == update and "retrying" in (s.message or "")
    )
    assert state.phase.value == phase
    assert image in (state.message or "")
    assert state.running_revision == good
    # three more pull attempts (1 s apart here) change nothing either
    pulls = runtime.pulls
    wait_for(lambda: runtime.pulls >= pulls + 3, what="three more pull attempts")
    after = world.container("web")
    assert after is not None
    assert after["Id"] == before["Id"]
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]
    assert len(world.owned("web")) == 1  # no half-made replacement left behind
    assert poller.ok > 0
    assert poller.failures == []
    last = world.state("web")
    assert last is not None
    assert (last.phase.value, last.running_revision) == (phase, good)

    if registry == "registry-down":  # and when it comes back, the update goes through
        world.podman.start_registry()
        world.wait_state("web", lambda s: running(s, update), timeout=30)
        replaced = world.container("web")
        assert replaced is not None
        assert "V=2" in replaced["Config"]["Env"]


@pytest.mark.timeout(60)
def test_an_image_change_makes_the_new_container_before_it_breaks_the_old(
    world: AgentWorld, poll: Callable[..., Poller]
) -> None:
    world.start_agent()
    port = free_port()
    first = world.put_desired("web", httpd_score(image=world.podman.image, port=port))
    world.wait_state("web", lambda s: running(s, first))
    before = world.container("web")
    assert before is not None
    image = world.podman.push_tag("v2")  # present in the registry only: a real pull
    poller = poll(port, timeout=0.2)
    second = world.put_desired("web", httpd_score(image=image, port=port))
    world.wait_state("web", lambda s: running(s, second), timeout=30)
    assert fetch(port) == "hello from fleet\n"
    answered = poller.ok
    wait_for(lambda: poller.ok > answered, what="the poller answered by the new container")
    [after] = world.owned("web")
    assert after["Id"] != before["Id"]
    assert after["Names"] == [f"fleet-{world.device}-web-web"]
    assert after["Image"] == image
    assert after["Labels"]["fleet.nationtech.io/revision"] == str(second)
    assert len(world.podman.containers()) == 1  # no leftover, no duplicate
    print(
        f"replace outage: longest gap between answers {poller.longest_gap:.3f}s, "
        f"{len(poller.failures)} failed of {poller.ok + len(poller.failures)} requests"
    )
