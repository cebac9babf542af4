"""The sample names a real operator exposes, for checking what alerts and dashboards ask
for: an :class:`OperatorMetrics` with one Deployment mid-rollout, served by the real HTTP
endpoint on 127.0.0.1 and parsed with the Prometheus client library's parser."""

from __future__ import annotations

from typing import get_args

from fleet.actors.operator.rollout import RolloutPhase
from fleet.runtime.prometheus.endpoint import HttpEndpoint
from fleet.runtime.prometheus.operator_metrics import OperatorMetrics
from loadtest.metrics_check import scrape


def exposed_names() -> set[str]:
    metrics = OperatorMetrics(rollout_phases=get_args(RolloutPhase))
    metrics.synced()
    metrics.status_lag(0.2)
    metrics.kube_error("patch", "unavailable")  # a labelled counter shows once counted
    counts = {"targeted": 2, "running": 1, "failed": 1}
    metrics.deployment(("ns", "web"), owner="a", counts=counts, rollout=("Halted", 2))
    endpoint = HttpEndpoint(
        host="127.0.0.1", port=0, registry=metrics.registry, alive=lambda: None,
        ready=lambda: None,
    )  # fmt: skip
    endpoint.start()
    try:
        return {name for name, _labels in scrape(f"http://127.0.0.1:{endpoint.address[1]}")}
    finally:
        endpoint.stop()
