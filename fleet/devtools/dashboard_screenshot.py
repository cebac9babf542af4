"""The README's picture of the web dashboard, taken from a real run of the demo's fleet.

Why it exists: a picture in the docs must show what the page shows on a real fleet, not a
mock-up, and must be easy to take again when the page changes. This starts the demo's
fleet (:class:`~fleet.devtools.local_fleet.LocalFleet`: nats-server, the API emulator,
the real ``fleet-operator`` with its dashboard, three real ``fleet-agent`` processes on
the simulated runtime), applies the demo's two Deployments, waits until the dashboard
itself says both run everywhere they target, and has Debian's headless Chromium
(through Selenium and Debian's chromedriver) screenshot the page at the URL the demo
prints:

    python -m fleet.devtools.dashboard_screenshot --out docs/img/web-dashboard.png

A development tool, never shipped code. What it must never do: wait without a bound, or
leave a process behind (the fleet is stopped whatever happens).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from fleet.runtime.kube.client import DEPLOYMENTS, KubeClient
from fleet.runtime.kube.config import make_api_client

from .demo_manifests import demo_deployments
from .local_fleet import LocalFleet, _port

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WIDTH, HEIGHT = 1280, 760


def _overview(url: str) -> dict[str, Any]:
    base, _, token = url.partition("/?token=")
    request = urllib.request.Request(
        base + "/api/overview", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        found: dict[str, Any] = json.loads(response.read())
        return found


def _converged(overview: dict[str, Any], names: set[str]) -> bool:
    shown = {d["name"]: d["aggregate"] for d in overview["deployments"]}
    return set(shown) == names and all(
        a.get("targeted", 0) > 0 and a.get("running") == a.get("targeted") for a in shown.values()
    )


def wait_until(what: str, check: Any, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass  # not answering yet
        if time.monotonic() > deadline:
            raise SystemExit(f"dashboard-screenshot: {what} not within {timeout:g} s")
        time.sleep(0.5)


def screenshot(url: str, out: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(60)
        driver.get(url)
        deadline = time.monotonic() + 60
        while not driver.execute_script(
            "return document.querySelectorAll('#devices tr[data-device]').length === 3"
            " && document.getElementById('live').textContent === 'live'"
        ):
            if time.monotonic() > deadline:
                raise SystemExit("dashboard-screenshot: the page did not show the fleet")
            time.sleep(0.2)
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dashboard-screenshot", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=Path("docs/img/web-dashboard.png"))
    parser.add_argument("--timeout", type=float, default=120.0, help="for the fleet to converge")
    args = parser.parse_args(argv)
    if shutil.which(CHROMIUM) is None or shutil.which(CHROMEDRIVER) is None:
        raise SystemExit("dashboard-screenshot: needs Debian's chromium and chromium-driver")
    root = Path(tempfile.mkdtemp(prefix="fleet-screenshot-"))
    fleet = LocalFleet(root=root, simulated=True, auth=False, say=lambda _: None)
    try:
        fleet.start()
        bodies = demo_deployments(image=None, host_port=_port(8080))
        kube = KubeClient(make_api_client(kube_url=fleet.kube.url), timeout=10)
        wait_until("the three devices", lambda: _overview(fleet.dashboard_url)["devices"]
                   ["online"] == 3, timeout=args.timeout)  # fmt: skip
        for body in bodies:
            kube.create(DEPLOYMENTS, body=body)
        names = {b["metadata"]["name"] for b in bodies}
        wait_until("every Deployment running", lambda: _converged(
            _overview(fleet.dashboard_url), names), timeout=args.timeout)  # fmt: skip
        screenshot(fleet.dashboard_url, args.out)
    finally:
        fleet.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
