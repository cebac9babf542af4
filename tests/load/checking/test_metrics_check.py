"""The load run's /metrics check: figures that differ from the checker's are named, the
fleet-wide counts are left out while a device is on the liveness edge, and the exposition
of a real :class:`OperatorMetrics` is read with the client library's parser."""

from __future__ import annotations

import pytest

from fleet.runtime.prometheus.endpoint import HttpEndpoint
from fleet.runtime.prometheus.operator_metrics import OperatorMetrics
from loadtest.expected import FleetView
from loadtest.metrics_check import differences, fleet_liveness, scrape

pytestmark = pytest.mark.timeout(30)

EXPECTED = {"web": {"targeted": 4, "running": 2, "pending": 0, "failed": 1, "unreachable": 1}}


@pytest.fixture
def served() -> OperatorMetrics:
    return OperatorMetrics()


def scraped(metrics: OperatorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    endpoint = HttpEndpoint(
        host="127.0.0.1", port=0, registry=metrics.registry, alive=lambda: None,
        ready=lambda: None,
    )  # fmt: skip
    endpoint.start()
    try:
        return scrape(f"http://127.0.0.1:{endpoint.address[1]}")
    finally:
        endpoint.stop()


def test_figures_that_agree_give_no_difference(served: OperatorMetrics) -> None:
    served.devices_known(4)
    for _ in range(3):
        served.device_online(True)
    served.deployment(("load", "web"), owner="a", counts=EXPECTED["web"], rollout=None)
    samples = scraped(served)
    assert differences(samples, namespace="load", expected=EXPECTED, liveness=(3, 1)) == []


def test_a_figure_that_lies_is_named(served: OperatorMetrics) -> None:
    served.devices_known(4)
    served.device_online(True)
    lying = {**EXPECTED["web"], "failed": 0, "running": 3}
    served.deployment(("load", "web"), owner="a", counts=lying, rollout=None)
    found = differences(scraped(served), namespace="load", expected=EXPECTED, liveness=(3, 1))
    assert found == [
        "web: /metrics running 3.0, expected 2",
        "web: /metrics failed 0.0, expected 1",
        "/metrics devices_online 1.0, expected 3",
        "/metrics devices_unreachable 3.0, expected 1",
    ]
    missing = differences(
        scraped(served), namespace="other", expected=EXPECTED, liveness=None, beating=4
    )
    assert missing[0] == "web: /metrics targeted None, expected 4"
    assert missing[-1] == "/metrics agents_reporting 0.0, expected 4"


def test_fleet_liveness_is_undecided_on_the_edge() -> None:
    view = FleetView(
        labels={"a": {}, "b": {}, "c": {}}, beats={"a": 100.0, "b": 50.0}, desired={}, reports={}
    )
    assert fleet_liveness(view, now=101.0, liveness_timeout=30.0, margin=2.0) == (1, 2)
    assert fleet_liveness(view, now=81.0, liveness_timeout=30.0, margin=2.0) is None


def test_only_loopback_is_scraped() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 only"):
        scrape("http://10.0.0.1:8080")
