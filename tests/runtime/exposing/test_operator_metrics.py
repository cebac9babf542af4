"""The operator's figures as Prometheus families: what the actors publish is what a scrape
shows, a Deployment's series leave with its actor (and only its own), and no series has a
per-device label."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fleet.actors.operator.ports import MetricsPort
from fleet.runtime.prometheus.operator_metrics import OperatorMetrics

pytestmark = pytest.mark.timeout(30)

Sample = tuple[str, tuple[tuple[str, str], ...]]


def scrape(metrics: OperatorMetrics) -> dict[Sample, float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[Sample, float], metric: str, /, **labels: str) -> float | None:
    return samples.get((metric, tuple(sorted(labels.items()))))


def counts(running: int, pending: int = 0, failed: int = 0, unreachable: int = 0) -> dict[str, int]:
    return {"targeted": running + pending + failed + unreachable, "running": running,
            "pending": pending, "failed": failed, "unreachable": unreachable}  # fmt: skip


def test_it_is_the_port_the_actors_publish_to() -> None:
    port: MetricsPort = OperatorMetrics()  # mypy checks the shape
    port.synced()


def test_fleet_figures_and_the_unreachable_share() -> None:
    metrics = OperatorMetrics()
    assert value(scrape(metrics), "fleet_operator_synced") == 0
    metrics.devices_known(5)
    for online in (True, True, True, False):
        metrics.device_online(online)
    metrics.synced()
    samples = scrape(metrics)
    assert value(samples, "fleet_operator_synced") == 1
    assert value(samples, "fleet_operator_devices_known") == 5
    assert value(samples, "fleet_operator_devices_online") == 2
    assert value(samples, "fleet_operator_devices_unreachable") == 3
    assert value(samples, "process_cpu_seconds_total") is not None  # the default collectors
    assert metrics.is_synced


def test_deployment_figures_with_their_rollout_phase() -> None:
    metrics = OperatorMetrics(rollout_phases=("Progressing", "Halted", "Complete"))
    metrics.deployment(("ns", "web"), owner="a", counts=counts(3, 1, 1, 2),
                       rollout=("Halted", 4))  # fmt: skip
    metrics.deployment(("ns", "db"), owner="b", counts=counts(1), rollout=None)
    samples = scrape(metrics)
    web = {"deployment_namespace": "ns", "deployment": "web"}
    assert value(samples, "fleet_operator_deployment_targeted_devices", **web) == 7
    for cls, n in (("running", 3), ("pending", 1), ("failed", 1), ("unreachable", 2)):
        assert value(samples, "fleet_operator_deployment_devices", **web, **{"class": cls}) == n
    phases = {
        phase: value(samples, "fleet_operator_deployment_rollout_phase", **web, phase=phase)
        for phase in ("Progressing", "Halted", "Complete")
    }
    assert phases == {"Progressing": 0, "Halted": 1, "Complete": 0}
    assert value(samples, "fleet_operator_deployment_rollout_revision", **web) == 4
    db = {"deployment_namespace": "ns", "deployment": "db"}
    assert value(samples, "fleet_operator_deployment_targeted_devices", **db) == 1
    assert value(samples, "fleet_operator_deployment_rollout_revision", **db) is None


def test_a_deployment_leaves_with_its_actor_and_not_with_a_predecessor() -> None:
    metrics = OperatorMetrics()
    key = ("ns", "web")
    metrics.deployment(key, owner="old", counts=counts(1), rollout=None)
    metrics.deployment(key, owner="new", counts=counts(2), rollout=None)  # recreated
    metrics.deployment_gone(key, owner="old")  # the old actor stops after the new started
    labels = {"deployment_namespace": "ns", "deployment": "web"}
    assert value(scrape(metrics), "fleet_operator_deployment_targeted_devices", **labels) == 2
    metrics.deployment_gone(key, owner="new")
    samples = scrape(metrics)
    assert not [k for k in samples if k[0].startswith("fleet_operator_deployment")]


def test_writes_reconnects_and_kube_errors_count() -> None:
    metrics = OperatorMetrics()
    samples = scrape(metrics)  # every write series exists before the first write
    for op in ("put", "delete"):
        for result in ("ok", "failed"):
            labels = {"op": op, "result": result}
            assert value(samples, "fleet_operator_desired_writes_total", **labels) == 0
    metrics.desired_written("put", 998, 2, 0.3)
    metrics.desired_written("delete", 5, 0, 0.01)
    metrics.nats_reconnected()
    metrics.kube_error("patch", "conflict")
    metrics.kube_error("watch", "unavailable")
    metrics.kube_error("watch", "unavailable")
    samples = scrape(metrics)
    written = "fleet_operator_desired_writes_total"
    assert value(samples, written, op="put", result="ok") == 998
    assert value(samples, written, op="put", result="failed") == 2
    assert value(samples, written, op="delete", result="ok") == 5
    batches = "fleet_operator_desired_write_batch_seconds"
    assert value(samples, f"{batches}_count", op="put") == 1
    assert value(samples, f"{batches}_bucket", op="put", le="0.25") == 0
    assert value(samples, f"{batches}_bucket", op="put", le="0.5") == 1
    assert value(samples, "fleet_operator_nats_reconnects_total") == 1
    errors = "fleet_operator_kube_api_errors_total"
    assert value(samples, errors, verb="watch", kind="unavailable") == 2
    assert value(samples, errors, verb="patch", kind="conflict") == 1


def test_no_series_is_per_device() -> None:
    metrics = OperatorMetrics(rollout_phases=("Complete",))
    metrics.devices_known(3)
    metrics.deployment(("ns", "web"), owner="a", counts=counts(3), rollout=("Complete", 1))
    labels = {name for (_, pairs) in scrape(metrics) for name, _ in pairs}
    assert "device" not in labels
    assert labels <= {"deployment_namespace", "deployment", "class", "phase", "op", "result",
                      "verb", "kind", "le", "generation", "implementation", "major", "minor",
                      "patchlevel", "version"}  # fmt: skip
