"""Whether the Kubernetes API answers, as the operator's calls find it: any answer (even a
404 or a 409) shows it reachable, no answer shows it not, and every error is counted by
its verb and kind."""

from __future__ import annotations

import kubernetes
import pytest

from fleet.runtime.kube.client import DEPLOYMENTS, KubeClient, KubeNotFound, KubeUnavailable
from fleet.runtime.kube.errors import KubeConflict, KubeError
from fleet.runtime.kube.health import ApiHealth, error_kind
from fleet.runtime.nats.server import free_port
from tests.fixtures.kube import KubeCluster

pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_latest_outcome_and_its_age_decide() -> None:
    clock, errors = Clock(), list[tuple[str, str]]()
    health = ApiHealth(on_error=lambda verb, kind: errors.append((verb, kind)), clock=clock)
    assert health.problem(within=60) == "no answer from the Kubernetes API yet"
    health.answered()
    assert health.problem(within=60) is None
    health.failed("patch", KubeConflict("patch deployments ns/web: 409 Conflict"))
    health.failed("get", KubeNotFound("get deployments ns/gone: 404 Not Found"))
    assert health.problem(within=60) is None  # refusals are answers
    health.failed("watch", KubeUnavailable("watch deployments: connection refused"))
    assert health.problem(within=60) == (
        "Kubernetes API unreachable: watch deployments: connection refused"
    )
    health.answered()
    clock.now += 61
    assert health.problem(within=60) == "no answer from the Kubernetes API for 61 s"
    assert errors == [("patch", "conflict"), ("get", "not_found"), ("watch", "unavailable")]


def test_error_kinds_are_few() -> None:
    assert error_kind(KubeUnavailable("x")) == "unavailable"
    assert error_kind(KubeConflict("x")) == "conflict"
    assert error_kind(KubeNotFound("x")) == "not_found"
    assert error_kind(KubeError("403 Forbidden")) == "refused"
    assert error_kind(ValueError("x")) == "other"


def test_a_long_reason_is_cut_to_a_line() -> None:
    health = ApiHealth()
    health.failed("list", KubeUnavailable("x" * 5000))
    problem = health.problem(within=60)
    assert problem is not None
    assert len(problem) < 300


def test_the_client_reports_every_call(kube: KubeCluster) -> None:
    errors: list[tuple[str, str]] = []
    client = KubeClient(kube.api_client, health=ApiHealth(on_error=lambda *e: errors.append(e)))
    assert client.health.problem(within=60) is not None
    client.list_objects(DEPLOYMENTS, namespace="default")
    assert client.health.problem(within=60) is None
    with pytest.raises(KubeNotFound):
        client.get_object(DEPLOYMENTS, namespace="default", name="absent")
    assert client.health.problem(within=60) is None
    assert errors == [("get", "not_found")]


def test_a_client_that_reaches_nothing_is_not_ready() -> None:
    config = kubernetes.client.Configuration()
    config.host = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    api_client = kubernetes.client.ApiClient(config)
    try:
        errors: list[tuple[str, str]] = []
        health = ApiHealth(on_error=lambda *e: errors.append(e))
        client = KubeClient(api_client, timeout=2.0, health=health)
        with pytest.raises(KubeUnavailable):
            client.list_objects(DEPLOYMENTS, namespace=None)
    finally:
        api_client.close()  # type: ignore[no-untyped-call]  # kubernetes leaves it bare
    problem = health.problem(within=60)
    assert problem is not None
    assert problem.startswith("Kubernetes API unreachable: list deployments")
    assert errors == [("list", "unavailable")]
