"""The operator's dashboard in a real browser: devices appear, bars move, silence shows.

Everything live is asserted without a reload: the page's ``fleetLoadId`` (made once when
the script loads) must be the same at the end.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from fleet.contracts import Phase
from tests.fixtures.kube import KubeCluster
from tests.operator.sim import SCORE, Fleet

from .conftest import LIVENESS, VIEWER, Beater, Dashboard

DEVICES = {"pi-lab-1": "lab", "pi-shop-1": "shop", "pi-shop-2": "shop"}  # the demo's three
WAIT = 60.0  # a loaded 2-core machine; every wait ends as soon as its condition holds


def wait(browser: Any, condition: Any, timeout: float = WAIT) -> Any:
    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(condition)


def text(browser: Any, css: str) -> str:
    """The element's text, read in one script (the page re-renders under us)."""
    found = browser.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", css
    )
    return str(found)


def rows(browser: Any) -> list[str]:
    found = browser.execute_script(
        "return [...document.querySelectorAll('#devices tr[data-device]')]"
        ".map(r => r.dataset.device)"
    )
    return [str(d) for d in found]


def count(browser: Any, deployment: str, cls: str) -> str | None:
    found = browser.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.dataset.count : null",
        f'.deployment[data-name="{deployment}"] .seg.{cls}',
    )
    return None if found is None else str(found)


def api(dashboard: Dashboard, path: str, token: str | None = VIEWER) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(dashboard.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:  # refused before our routes (aiohttp's own 400): plain text
            return exc.code, {"error": raw.decode(errors="replace")}


def test_devices_appear_bars_move_and_silence_shows_live(
    browser: Any, dashboard: Dashboard, fleet: Fleet, kube: KubeCluster
) -> None:
    for device, site in DEVICES.items():
        fleet.join([device], {"site": site})
    beater = Beater(fleet, DEVICES).start()
    try:
        browser.get(dashboard.page())
        load_id = wait(browser, lambda b: b.execute_script("return window.fleetLoadId"))
        wait(browser, lambda b: len(rows(b)) == 3)
        assert text(browser, "#devices-online") == "3"

        kube.create_deployment("ns", "hello-web", selector={"matchLabels": {"site": "lab"}},
                               score=SCORE)  # fmt: skip
        wait(browser, lambda b: count(b, "ns/hello-web", "pending") == "1")
        assert count(browser, "ns/hello-web", "running") == "0"
        wait(browser, lambda b: len(fleet.desired()) == 1)
        fleet.report(["pi-lab-1"], "hello-web", Phase.RUNNING)
        wait(browser, lambda b: count(b, "ns/hello-web", "running") == "1")
        wait(browser, lambda b: text(b, '.deployment[data-name="ns/hello-web"] .ready')
             .startswith("Ready=True"))  # fmt: skip

        beater.devices.discard("pi-shop-2")  # its agent stops
        state = '#devices tr[data-device="pi-shop-2"] td.state'
        wait(browser, lambda b: text(b, state) == "unreachable", timeout=LIVENESS + WAIT)
        assert text(browser, '#devices tr[data-device="pi-shop-1"] td.state') == "online"
        assert text(browser, "#devices-unreachable") == "1"
        assert browser.execute_script("return window.fleetLoadId") == load_id  # never reloaded
    finally:
        beater.stop()


def test_filters_and_the_deployment_page(
    browser: Any, dashboard: Dashboard, fleet: Fleet, kube: KubeCluster
) -> None:
    fleet.join(["pi-lab-1"], {"site": "lab"})
    fleet.join(["pi-shop-1", "pi-shop-2"], {"site": "shop", "model": "pi5"})
    kube.create_deployment("ns", "hello-shop", selector={"matchLabels": {"site": "shop"}},
                           score=SCORE)  # fmt: skip
    wait(browser, lambda b: len(fleet.desired()) == 2)
    fleet.report(["pi-shop-1"], "hello-shop", Phase.RUNNING)
    fleet.report(["pi-shop-2"], "hello-shop", Phase.FAILED, message="image pull failed: 404")

    browser.get(dashboard.page())
    wait(browser, lambda b: len(rows(b)) == 3)
    browser.find_element(By.ID, "f-selector").send_keys("site=shop,model in (pi4,pi5)")
    browser.find_element(By.ID, "f-apply").click()
    wait(browser, lambda b: rows(b) == ["pi-shop-1", "pi-shop-2"])

    selector = browser.find_element(By.ID, "f-selector")  # a filter that does not parse
    selector.clear()
    selector.send_keys("site in (shop")
    browser.find_element(By.ID, "f-apply").click()
    wait(browser, lambda b: "without its ')'" in text(b, "#filter-error"))
    assert text(browser, "#devices-online") == "3"  # the rest of the page is unaffected
    status, body = api(dashboard, "/api/devices?selector=site+in+(shop")
    assert status == 400
    assert "without its ')'" in body["error"]

    browser.get(dashboard.page(fragment="#/deployment/ns/hello-shop"))
    wait(browser, lambda b: "pi-shop-2" in text(b, '#dep-failing tr[data-device="pi-shop-2"]'))
    assert "image pull failed: 404" in text(browser, "#dep-failing")
    wait(browser, lambda b: "pi-shop-1" in text(b, '.targets[data-class="running"]'))
    assert "pi-shop-2" in text(browser, '.targets[data-class="failed"]')

    browser.get(dashboard.page(fragment="#/deployment/ns/no-such"))
    wait(browser, lambda b: "no Deployment ns/no-such" in text(b, "#error"))
    status, body = api(dashboard, "/api/deployments/ns/no-such")
    assert status == 404
    assert api(dashboard, "/api/deployments/ns/hello-shop")[0] == 200  # nothing else affected
