"""The dashboard picture's page: every panel of deploy/grafana/fleet-operator.json on its
grid, a chart with one line per series, tables with each series' last value, legends
filled from the labels (the Prometheus and Chromium steps are run by hand: docs)."""

from __future__ import annotations

import html
import json
import re

import pytest

from loadtest.dashboard_picture import DASHBOARD, legend, page, svg_chart

pytestmark = pytest.mark.timeout(30)


def test_every_panel_is_drawn_with_its_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    devices = next(p for p in panels if p["title"] == "Devices")
    table = next(p for p in panels if p["type"] == "table")
    online = ("online", [(0.0, 1.0), (60.0, 90.0)])
    unreachable = ("unreachable", [(0.0, 0.0), (60.0, 10.0)])
    data = {
        devices["id"]: [online, unreachable],
        table["id"]: [("web running", [(0.0, 3.0), (60.0, 7.0)])],
    }
    out = page(dashboard, data, caption="a test", window=(0.0, 60.0), step=30.0)
    for panel in dashboard["panels"]:
        assert html.escape(panel["title"]) in out
    assert out.count("<polyline") == 2
    assert "<td>web running</td><td>7.00</td>" in out
    assert out.count("no data") == len(panels) - 2


def test_a_chart_spans_its_series_and_a_legend_fills_its_labels() -> None:
    chart = svg_chart([("a", [(0.0, 0.0), (10.0, 5.0)])], width=300, height=100, unit="s")
    (points,) = re.findall(r'points="([^"]+)"', chart)
    xs = [float(p.split(",")[0]) for p in points.split()]
    assert xs[0] < xs[-1]
    assert ">5.00 s<" in chart  # the top of the axis: the largest value
    gappy = [("a", [(0.0, 1.0), (2.0, 1.0), (30.0, 2.0), (32.0, 2.0)])]
    broken = svg_chart(gappy, width=300, height=100, unit="", window=(0.0, 40.0), gap=6.0)
    assert broken.count("<polyline") == 2  # no line drawn across 28 s without samples
    assert (
        legend("{{name}} {{class}}", json.dumps({"name": "web", "class": "failed"})) == "web failed"
    )
    assert legend("{{missing}}", '{"a": "b"}') == '{"a": "b"}'  # never a half-filled legend
