"""Dashboard fixtures: the real operator serving its dashboard, and one headless Chromium.

The operator runs against a real nats-server and the Kubernetes API emulator (the
operator tests' fixtures), with simulated devices; viewers' tokens are reviewed by the
emulator's TokenReview and SubjectAccessReview. The browser is Debian's ``chromium``
driven through Debian's ``chromium-driver`` (``scripts/system-deps``), one per module.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec
import pytest

from fleet.actors.operator.app import Operator, OperatorConfig
from fleet.cli.dashboard_rollouts import KubeRollouts
from fleet.dashboard.access import KubeAccess
from fleet.dashboard.service import DashboardService
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.kube.access_review import AccessReviewer
from fleet.runtime.kube.client import KubeClient
from fleet.runtime.kube.event_recorder import EventRecorder
from fleet.runtime.nats.bus import Bus
from tests.fixtures.kube import KubeCluster
from tests.operator.conftest import FAST
from tests.operator.sim import Fleet

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
VIEWER = "viewer-token-0123456789abcdef"
STEERER = "steerer-token-0123456789abcdef"  # may also patch Deployments: the rollout buttons
NOBODY = "nobody-token-0123456789abcdef"
LIVENESS = 6.0  # long enough for a loaded machine's beater, short enough to wait for


class Dashboard(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    operator: Operator
    service: DashboardService

    def page(self, token: str | None = VIEWER, fragment: str = "") -> str:
        return f"{self.url}/" + (f"?token={token}" if token else "") + fragment


class Beater:
    """Simulated agents beating every second, on a thread of the test's own (as agents
    do on their own clocks); a device taken out stops beating: it goes silent."""

    def __init__(self, fleet: Fleet, devices: Iterable[str]) -> None:
        self.fleet = fleet
        self.devices = set(devices)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="beater", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.fleet.beat(sorted(self.devices))

    def start(self) -> Beater:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None or shutil.which(CHROMEDRIVER) is None:
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/system-deps)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def fleet(bus: Bus, event_loop_thread: EventLoopThread) -> Fleet:
    return Fleet(bus, event_loop_thread)


@pytest.fixture
def dashboard(
    bus: Bus, event_loop_thread: EventLoopThread, kube: KubeCluster
) -> Iterator[Dashboard]:
    reviews = kube.server.emulator.reviews  # type: ignore[union-attr]
    reviews.add_token(VIEWER, user="alice", allow=(("fleet.nationtech.io", "*", "list"),))
    reviews.add_token(NOBODY, user="bob")
    reviews.add_token(STEERER, user="carol", allow=(
        ("fleet.nationtech.io", "deployments", "list"),
        ("fleet.nationtech.io", "deployments", "patch"),
    ))  # fmt: skip
    audit = EventRecorder(KubeClient(kube.api_client))
    service = DashboardService(
        host="127.0.0.1", port=0, access=KubeAccess(AccessReviewer(kube.api_client)),
        liveness_timeout=LIVENESS,
        rollouts=KubeRollouts(KubeClient(kube.api_client), events=audit.post),
    )  # fmt: skip
    host, port = service.start()
    audit.start()
    config = OperatorConfig(**{**{f: getattr(FAST, f) for f in FAST.__struct_fields__},
                               "liveness_timeout": LIVENESS})  # fmt: skip
    operator = Operator(bus=bus, loop_thread=event_loop_thread, kube=KubeClient(kube.api_client),
                        config=config, dashboard=service.feed)  # fmt: skip
    try:
        operator.start()
        yield Dashboard(url=f"http://{host}:{port}", operator=operator, service=service)
    finally:
        operator.stop()
        service.stop()
        audit.stop()
