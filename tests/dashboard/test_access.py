"""Who may look: Kubernetes decides (TokenReview, SubjectAccessReview via the API emulator).

A token without rights to Deployments sees an error on the page, not data; a forged
token and no token at all are a 401 from the API, and none of them affects a viewer
who may look.
"""

from __future__ import annotations

from typing import Any

from selenium.webdriver.common.by import By

from tests.operator.sim import Fleet

from .conftest import NOBODY, VIEWER, Dashboard
from .test_live_page import api, rows, text, wait


def test_a_token_without_rights_sees_an_error_not_data(
    browser: Any, dashboard: Dashboard, fleet: Fleet
) -> None:
    fleet.join(["pi-lab-1"], {"site": "lab"})
    status, body = api(dashboard, "/api/devices")
    assert status == 200
    wait(browser, lambda b: api(dashboard, "/api/devices")[1]["total"] == 1)

    browser.get(dashboard.page(NOBODY))
    wait(browser, lambda b: "bob may not list deployments.fleet.nationtech.io" in text(b, "#error"))
    assert rows(browser) == []
    assert not browser.find_element(By.ID, "fleet").is_displayed()
    status, body = api(dashboard, "/api/devices", token=NOBODY)
    assert status == 403
    assert "pi-lab-1" not in str(body)


def test_forged_and_missing_tokens_are_refused(browser: Any, dashboard: Dashboard) -> None:
    status, body = api(dashboard, "/api/overview", token="forged-" + VIEWER)
    assert status == 401
    assert "token not accepted" in body["error"]
    status, body = api(dashboard, "/api/overview", token=None)
    assert status == 401
    assert "no token" in body["error"]
    status, body = api(dashboard, "/api/events", token="x" * 10_000)
    assert status in (400, 401)  # a header past aiohttp's bound (8190 bytes) is refused unread

    browser.get(dashboard.page("forged-" + VIEWER))
    wait(browser, lambda b: "token not accepted" in text(b, "#error"))
    assert browser.find_element(By.ID, "login").is_displayed()
    assert api(dashboard, "/api/overview")[0] == 200  # the viewer who may look still may
