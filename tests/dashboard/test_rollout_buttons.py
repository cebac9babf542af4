"""The rollout buttons in a real browser: shown only to a viewer who may, done as
``fleetctl rollout`` does them, audited; forged and bad requests refused.

The viewer's rights are the API emulator's SubjectAccessReviews: carol (``STEERER``) may
list and patch fleet Deployments, alice (``VIEWER``) may only list them.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

import pytest

from fleet.contracts import ANNOTATION_ROLLOUT_APPROVED, ANNOTATION_ROLLOUT_PAUSED, Phase
from tests.fixtures.kube import KubeCluster
from tests.operator.events.conftest import events_for
from tests.operator.sim import SCORE, SCORE_V2, Fleet, eventually

from .conftest import STEERER, VIEWER, Beater, Dashboard
from .test_live_page import WAIT, api, text, wait

PAGE = "#/deployment/ns/web"


def buttons(browser: Any) -> list[str]:
    found = browser.execute_script(
        "return [...document.querySelectorAll('#rollout-actions button')]"
        ".map(b => b.dataset.action)"
    )
    return [str(a) for a in found]


def press(browser: Any, action: str) -> None:
    """Click the button, found and clicked in one script (the page re-renders under us)."""
    wait(browser, lambda b: b.execute_script(
        "const e = document.querySelector(arguments[0]); if (e) e.click(); return !!e",
        f'#rollout-actions button[data-action="{action}"]',
    ))  # fmt: skip


def post(
    dashboard: Dashboard, path: str, *, token: str | None = STEERER, query_token: bool = False,
    content_type: str = "application/json", origin: str | None = None,
) -> tuple[int, dict[str, Any]]:  # fmt: skip
    url = dashboard.url + path + (f"?token={token}" if query_token else "")
    headers = {"Content-Type": content_type}
    if token and not query_token:
        headers["Authorization"] = f"Bearer {token}"
    if origin is not None:
        headers["Origin"] = origin
    request = urllib.request.Request(url, data=b"{}", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"error": raw.decode(errors="replace")}


def annotations_of(kube: KubeCluster) -> dict[str, str]:
    obj = kube.deployment("ns", "web") or {}
    found: dict[str, str] = (obj.get("metadata") or {}).get("annotations") or {}
    return found


def test_a_viewer_who_may_patch_pauses_and_resumes_and_is_audited(
    browser: Any, dashboard: Dashboard, fleet: Fleet, kube: KubeCluster,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="fleet.operator.dashboard")
    fleet.join(["pi-lab-1"], {"site": "lab"})
    kube.create_deployment("ns", "web", selector={"matchLabels": {"site": "lab"}}, score=SCORE)
    browser.get(dashboard.page(STEERER, PAGE))
    wait(browser, lambda b: buttons(b) == ["pause"])
    load_id = browser.execute_script("return window.fleetLoadId")

    press(browser, "pause")
    wait(browser, lambda b: text(b, "#rollout-paused") == "paused")
    assert "deployment ns/web paused" in text(browser, "#rollout-result")  # fleetctl's line
    assert annotations_of(kube).get(ANNOTATION_ROLLOUT_PAUSED) == "true"
    wait(browser, lambda b: buttons(b) == ["resume"])
    eventually(lambda: events_for(kube, "Deployment", "web", "RolloutPaused"), timeout=WAIT)
    (event,) = events_for(kube, "Deployment", "web", "RolloutPaused")
    assert event["message"].startswith("carol paused the rollout from the dashboard")
    assert event["involvedObject"]["uid"] == (kube.deployment("ns", "web") or {})[
        "metadata"]["uid"]  # fmt: skip
    assert any("carol paused the rollout of deployment ns/web" in r.getMessage()
               for r in caplog.records)  # fmt: skip

    press(browser, "resume")
    wait(browser, lambda b: buttons(b) == ["pause"])
    assert text(browser, "#rollout-paused") == ""
    assert ANNOTATION_ROLLOUT_PAUSED not in annotations_of(kube)
    eventually(lambda: events_for(kube, "Deployment", "web", "RolloutResumed"), timeout=WAIT)
    assert browser.execute_script("return window.fleetLoadId") == load_id  # never reloaded


def test_a_viewer_without_patch_rights_gets_no_buttons_and_a_forged_post_is_403(
    browser: Any, dashboard: Dashboard, fleet: Fleet, kube: KubeCluster
) -> None:
    kube.create_deployment("ns", "web", selector={"matchLabels": {"site": "lab"}}, score=SCORE)
    browser.get(dashboard.page(VIEWER, PAGE))
    wait(browser, lambda b: text(b, "#rollout-head") != "")
    assert buttons(browser) == []
    status, body = api(dashboard, "/api/deployments/ns/web/rollout")
    assert status == 200
    assert body["actions"] == dict.fromkeys(("pause", "resume", "approve", "undo"), False)

    status, body = post(dashboard, "/api/deployments/ns/web/rollout/pause", token=VIEWER)
    assert status == 403
    assert "alice may not pause ns/web" in body["error"]
    # carol may, but not from another site's page: the token only in the URL, a form's
    # content type, another origin
    for forged in (
        {"query_token": True},
        {"content_type": "application/x-www-form-urlencoded"},
        {"origin": "https://evil.example"},
    ):
        status, body = post(dashboard, "/api/deployments/ns/web/rollout/pause", **forged)
        assert status in (401, 403), (forged, status, body)
    # undo also needs list on deploymentrevisions, which carol lacks
    status, body = post(dashboard, "/api/deployments/ns/web/rollout/undo")
    assert status == 403
    assert "list deploymentrevisions" in body["error"]
    assert ANNOTATION_ROLLOUT_PAUSED not in annotations_of(kube)
    assert not events_for(kube, "Deployment", "web", "RolloutPaused")


def test_bad_actions_are_4xx_and_affect_nothing(dashboard: Dashboard, kube: KubeCluster) -> None:
    kube.create_deployment("ns", "web", selector={"matchLabels": {"site": "lab"}}, score=SCORE)
    status, body = post(dashboard, "/api/deployments/ns/web/rollout/explode")
    assert status == 400
    assert "no such action 'explode'" in body["error"]
    status, body = post(dashboard, "/api/deployments/ns/no-such/rollout/pause")
    assert status == 404
    assert "no Deployment ns/no-such" in body["error"]
    status, body = api(dashboard, "/api/deployments/ns/no-such/rollout", token=STEERER)
    assert status == 404
    # approve with no rollout waiting for approval: fleetctl's refusal, a 409
    status, body = post(dashboard, "/api/deployments/ns/web/rollout/approve")
    assert status == 409, body
    assert "ns/web" in body["error"]
    # behind a TLS-terminating proxy the page is https:// on this host: not a forgery
    host = dashboard.url.partition("://")[2].split("/")[0]
    status, body = post(
        dashboard, "/api/deployments/ns/web/rollout/approve", origin=f"https://{host}"
    )
    assert status == 409, body
    status, body = api(dashboard, "/api/deployments/ns/web/rollout/pause", token=STEERER)
    assert status == 405  # a GET never acts
    assert ANNOTATION_ROLLOUT_PAUSED not in annotations_of(kube)


def test_a_manual_rollout_shows_its_batches_and_the_approve_button_starts_the_next(
    browser: Any, dashboard: Dashboard, fleet: Fleet, kube: KubeCluster
) -> None:
    devices = ["pi-1", "pi-2", "pi-3"]
    fleet.join(devices, {"site": "lab"})
    beater = Beater(fleet, devices).start()
    try:
        kube.create_deployment("ns", "web", selector={"matchLabels": {"site": "lab"}},
                               score=SCORE)  # fmt: skip
        eventually(lambda: len(fleet.desired()) == 3, timeout=WAIT)
        fleet.report(devices, "web", Phase.RUNNING)
        eventually(lambda: (kube.aggregate("ns", "web") or {}).get("running") == 3, timeout=WAIT)
        manual = {"batches": [{"size": 1}], "approval": "manual"}
        kube.patch_deployment_spec("ns", "web", {"score": SCORE_V2, "rollout": manual})
        browser.get(dashboard.page(STEERER, PAGE))

        def canary_running() -> bool:  # the canary runs the new revision; the rest, the old
            fleet.report(devices, "web", Phase.RUNNING)
            return phase(browser) == "WaitingForApproval"

        eventually(canary_running, timeout=WAIT, interval=1.0)
        wait(browser, lambda b: batches(b) == ["1", "2"])
        assert "1 of 1 updated, 1 running" in text(browser, '.batch[data-batch="1"]')
        wait(browser, lambda b: "approve" in buttons(b))
        press(browser, "approve")
        wait(browser, lambda b: "batch 2/2 of revision 2 approved" in text(b, "#rollout-result"))
        assert annotations_of(kube).get(ANNOTATION_ROLLOUT_APPROVED) == "2/2"
        wait(browser, lambda b: text(b, ".batch.current strong") == "batch 2")
        eventually(lambda: events_for(kube, "Deployment", "web", "RolloutApproved"), timeout=WAIT)
    finally:
        beater.stop()


def phase(browser: Any) -> str:
    found = browser.execute_script(
        "const e = document.getElementById('rollout-head'); return e ? e.dataset.phase : ''"
    )
    return str(found or "")


def batches(browser: Any) -> list[str]:
    found = browser.execute_script(
        "return [...document.querySelectorAll('#rollout-batches .batch')].map(b => b.dataset.batch)"
    )
    return [str(b) for b in found]
