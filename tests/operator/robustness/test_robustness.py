"""Bad input never stops the operator: invalid specs, malformed entries, expired watches."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from fleet.actors.operator.app import Operator
from fleet.contracts import Phase
from tests.fixtures.kube import KubeCluster

from ..sim import SCORE, Fleet, eventually

SEL = {"matchLabels": {"role": "edge"}}


def test_invalid_spec_gets_a_reason_and_writes_nothing(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1"], {"role": "edge"})
    start_operator()
    kube.create_deployment(
        "ns",
        "bad-sel",
        selector={"matchExpressions": [{"key": "role", "operator": "In"}]},
        score=SCORE,
    )
    kube.create_deployment("ns", "bad-score", selector=SEL, score={"type": "docker"})
    kube.create_deployment("ns", "good", selector=SEL, score=SCORE)

    eventually(lambda: kube.ready("ns", "bad-sel").get("reason") == "InvalidSpec")
    assert "matchExpressions[0]" in kube.ready("ns", "bad-sel")["message"]
    eventually(lambda: kube.ready("ns", "bad-score").get("reason") == "InvalidSpec")
    assert "spec.score" in kube.ready("ns", "bad-score")["message"]
    eventually(lambda: set(fleet.desired()) == {"d1.good"})

    kube.patch_deployment_spec("ns", "bad-score", {"score": SCORE})  # fixed: now it writes
    eventually(lambda: set(fleet.desired()) == {"d1.good", "d1.bad-score"})


def test_malformed_entries_are_logged_and_skipped(
    kube: KubeCluster,
    fleet: Fleet,
    start_operator: Callable[..., Operator],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="fleet.actors.operator.sources")
    fleet.join(["d1"], {"role": "edge"})
    fleet.put_raw("device-info", "info.d2", b"not json")
    fleet.put_raw("device-heartbeat", "heartbeat.d1.extra", b"{}")
    fleet.put_raw("device-state", "state.d1.web", b'{"phase": "Dancing"}')
    start_operator()
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: set(fleet.desired()) == {"d1.web"})
    fleet.report(["d1"], "web", Phase.RUNNING)
    eventually(lambda: kube.aggregate("ns", "web").get("running") == 1)
    text = caplog.text
    for key in (
        "device-info/info.d2",
        "device-heartbeat/heartbeat.d1.extra",
        "device-state/state.d1.web",
    ):
        assert key in text


def test_expired_watch_relists_and_sees_changes(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1"], {"role": "edge"})
    operator = start_operator()
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: set(fleet.desired()) == {"d1.web"})
    lists = operator.watchers[0].lists
    kube.compact()  # every watch ends; resuming from the old version answers 410
    kube.create_deployment("ns", "api", selector=SEL, score=SCORE)
    eventually(lambda: operator.watchers[0].lists > lists)
    eventually(lambda: set(fleet.desired()) == {"d1.web", "d1.api"})
