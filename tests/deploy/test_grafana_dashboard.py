"""deploy/grafana/fleet-operator.json: a dashboard Grafana imports (its datasource and job
chosen on import), whose every query asks only for series the operator really exposes,
with panels that do not overlap."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.deploy.conftest import DEPLOY
from tests.deploy.exposition import exposed_names

pytestmark = pytest.mark.timeout(60)

DASHBOARD = DEPLOY / "grafana" / "fleet-operator.json"
SERIES = re.compile(r"\b((?:fleet_operator|process)_[a-z_]+)")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_it_is_an_importable_dashboard_with_a_datasource_variable(
    dashboard: dict[str, Any],
) -> None:
    assert dashboard["uid"] == "fleet-operator"
    assert isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_every_query_asks_for_series_the_operator_exposes(dashboard: dict[str, Any]) -> None:
    exposed = exposed_names()
    seen: set[str] = set()
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = set(SERIES.findall(target["expr"]))
            assert used, (panel["title"], target["expr"])
            assert used <= exposed, f"{panel['title']}: {sorted(used - exposed)} not exposed"
            assert 'job=~"$job"' in target["expr"], (panel["title"], target["expr"])
            seen |= used
    # the figures the issue asks a person can graph are all on it
    for name in ("fleet_operator_devices_unreachable", "fleet_operator_deployment_devices",
                 "fleet_operator_status_lag_seconds_bucket",
                 "fleet_operator_agent_drift_repairs_total"):  # fmt: skip
        assert name in seen


def test_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        cells = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
