"""The chart's monitoring parts: a Service for the metrics port (always, with metrics on),
and, when asked, a ServiceMonitor that scrapes it and a PrometheusRule whose alerts ask
only for series the operator really exposes (a typo in an alert is an alert that never
fires), with the thresholds the values give."""

from __future__ import annotations

import re
from typing import Any, get_args

import pytest

from fleet.actors.operator.rollout import RolloutPhase
from tests.deploy.conftest import CHART, NAMESPACE, RELEASE, by_kind_name
from tests.deploy.exposition import exposed_names
from tests.deploy.helm import helm, render_chart

pytestmark = pytest.mark.timeout(120)

MONITORING = {
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus"}},
        "prometheusRule": {"enabled": True, "statusLagSeconds": 45, "unreachableShare": 0.3},
    }
}
SERIES = re.compile(r"\b(fleet_operator_[a-z_]+)")


@pytest.fixture(scope="module")
def monitored() -> dict[tuple[str, str], dict[str, Any]]:
    return by_kind_name(
        render_chart(CHART, release=RELEASE, namespace=NAMESPACE, values=MONITORING)
    )


def test_by_default_there_is_a_service_but_no_monitor_or_rule(
    chart_objects: list[dict[str, Any]],
) -> None:
    kinds = {o["kind"] for o in chart_objects}
    assert "Service" in kinds
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}
    off = render_chart(
        CHART, release=RELEASE, namespace=NAMESPACE, values={"metrics": {"enabled": False}}
    )
    assert not {o["kind"] for o in off} & {"Service", "ServiceMonitor", "PrometheusRule"}


def test_the_service_monitor_scrapes_the_operators_metrics_port(
    monitored: dict[tuple[str, str], dict[str, Any]],
) -> None:
    service = monitored[("Service", f"{RELEASE}-metrics")]
    monitor = monitored[("ServiceMonitor", RELEASE)]
    pod = monitored[("Deployment", RELEASE)]["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    wanted = monitor["spec"]["selector"]["matchLabels"]
    assert wanted.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"


def test_every_alert_asks_for_series_the_operator_exposes(
    monitored: dict[tuple[str, str], dict[str, Any]],
) -> None:
    rule = monitored[("PrometheusRule", RELEASE)]
    alerts = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    assert set(alerts) == {
        "FleetOperatorNotReady", "FleetStatusLagHigh", "FleetDevicesUnreachable",
        "FleetRolloutHalted",
    }  # fmt: skip
    exposed = exposed_names()
    for name, alert in alerts.items():
        used = set(SERIES.findall(alert["expr"]))
        assert used, name
        assert used <= exposed, f"{name} asks for {sorted(used - exposed)}"
        assert "{{" not in alert["expr"]  # every template was rendered
    phases = re.search(r'phase=~"([^"]+)"', alerts["FleetRolloutHalted"]["expr"])
    assert phases is not None
    assert set(phases.group(1).split("|")) <= set(get_args(RolloutPhase))
    assert alerts["FleetStatusLagHigh"]["expr"].rstrip().endswith("> 45")
    assert alerts["FleetDevicesUnreachable"]["expr"].rstrip().endswith("> 0.3")
    assert "{{ $value" in alerts["FleetStatusLagHigh"]["annotations"]["description"]


def test_helm_lint_passes_with_monitoring_on(tmp_path: Any) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        "metrics:\n  serviceMonitor:\n    enabled: true\n  prometheusRule:\n    enabled: true\n"
    )
    result = helm("lint", "--strict", str(CHART), "-f", str(values))
    assert "0 chart(s) failed" in result.stdout
