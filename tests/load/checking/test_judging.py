"""The checker's verdict from buckets and Deployments (pure: no servers)."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.check import judge
from loadtest.expected import FleetView, Report, SelectorError, selector_matches

NOW = 1_000_000.0
TIMEOUT = 30.0


def view(**overrides: Any) -> FleetView:
    """Three devices on 'lab', all beating, all Running deployment 'web' at its revision."""
    base: dict[str, Any] = {
        "labels": {d: {"site": "lab"} for d in ("d1", "d2", "d3")},
        "beats": dict.fromkeys(("d1", "d2", "d3"), NOW - 1),
        "desired": {(d, "web"): 10 + i for i, d in enumerate(("d1", "d2", "d3"))},
        "reports": {
            (d, "web"): Report(phase="Running", desired_revision=10 + i)
            for i, d in enumerate(("d1", "d2", "d3"))
        },
    }
    base.update(overrides)
    return FleetView(**base)


def deployment(aggregate: dict[str, int] | None, *, selector: Any = None) -> dict[str, Any]:
    status: dict[str, Any] = {"observedGeneration": 1}
    if aggregate is not None:
        status["aggregate"] = aggregate
    return {
        "metadata": {"name": "web", "generation": 1},
        "spec": {"selector": selector or {"matchLabels": {"site": "lab"}}},
        "status": status,
    }


def agg(
    running: int = 3, pending: int = 0, failed: int = 0, unreachable: int = 0
) -> dict[str, int]:
    targeted = running + pending + failed + unreachable
    return {
        "targeted": targeted,
        "running": running,
        "pending": pending,
        "failed": failed,
        "unreachable": unreachable,
    }


def test_a_true_aggregate_passes() -> None:
    verdict = judge(deployments=[deployment(agg())], view=view(), now=NOW, liveness_timeout=TIMEOUT)
    assert verdict.ok, verdict.render()
    assert verdict.render().startswith("PASS")


def test_a_device_reporting_failed_while_the_aggregate_says_running_fails() -> None:
    reports = dict(view().reports)
    reports[("d2", "web")] = Report(phase="Failed", desired_revision=11)

    verdict = judge(
        deployments=[deployment(agg(running=3))],
        view=view(reports=reports),
        now=NOW,
        liveness_timeout=TIMEOUT,
    )

    assert not verdict.ok
    text = verdict.render()
    assert text.startswith("FAIL")
    assert "web: aggregate.running is 3, devices say 2" in text
    assert "web: aggregate.failed is 0, devices say 1 (e.g. d2)" in text


def test_a_report_about_an_older_revision_counts_as_pending() -> None:
    reports = dict(view().reports)
    reports[("d1", "web")] = Report(phase="Running", desired_revision=9)

    verdict = judge(
        deployments=[deployment(agg(running=2, pending=1))],
        view=view(reports=reports),
        now=NOW,
        liveness_timeout=TIMEOUT,
    )
    assert verdict.ok, verdict.render()


def test_a_silent_device_counts_only_as_unreachable() -> None:
    beats = {"d1": NOW - 1, "d2": NOW - 1, "d3": NOW - 300}
    verdict = judge(
        deployments=[deployment(agg(running=2, unreachable=1))],
        view=view(beats=beats),
        now=NOW,
        liveness_timeout=TIMEOUT,
    )
    assert verdict.ok, verdict.render()


def test_a_heartbeat_age_at_the_timeout_is_undecided_never_a_pass() -> None:
    beats = {"d1": NOW - 1, "d2": NOW - 1, "d3": NOW - TIMEOUT}
    verdict = judge(
        deployments=[deployment(agg(running=3))],
        view=view(beats=beats),
        now=NOW,
        liveness_timeout=TIMEOUT,
    )
    assert not verdict.ok
    assert verdict.undecided == 1


def test_desired_entries_must_match_the_selection() -> None:
    desired = dict(view().desired)
    del desired[("d3", "web")]
    desired[("stranger", "web")] = 99

    verdict = judge(
        deployments=[deployment(agg(running=2, pending=1))],
        view=view(desired=desired),
        now=NOW,
        liveness_timeout=TIMEOUT,
    )
    assert not verdict.ok
    assert "web: 1 targeted devices have no desired entry (e.g. d3)" in verdict.lines
    assert "web: 1 desired entries for devices it does not select (e.g. stranger)" in verdict.lines


def test_a_missing_aggregate_or_stale_generation_fails() -> None:
    stale = deployment(agg())
    stale["metadata"]["generation"] = 2
    for obj in (deployment(None), stale):
        verdict = judge(deployments=[obj], view=view(), now=NOW, liveness_timeout=TIMEOUT)
        assert not verdict.ok


def test_no_deployments_is_not_a_pass() -> None:
    assert not judge(deployments=[], view=view(), now=NOW, liveness_timeout=TIMEOUT).ok


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
            {"a": "2"},
            True,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {"a": "1"},
            False,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ],
)
def test_label_selectors_follow_kubernetes(
    selector: dict[str, Any], labels: dict[str, str], expected: bool
) -> None:
    assert selector_matches(selector, labels) is expected


def test_an_unknown_selector_operator_is_named() -> None:
    with pytest.raises(SelectorError, match="'Near'"):
        selector_matches({"matchExpressions": [{"key": "a", "operator": "Near"}]}, {})
