"""The dashboard's read model: filters parse or say why, the index answers, changes coalesce."""

from __future__ import annotations

import datetime

import pytest

from fleet.actors.operator import messages as m
from fleet.contracts import DeploymentName, DeviceId, DeviceInfo, Phase
from fleet.dashboard.hub import Hub
from fleet.dashboard.query import QueryError, parse_query
from fleet.devtools.simprofile import SIMULATED_INVENTORY

NOW = 1_800_000_000.0
WHEN = datetime.datetime.fromtimestamp(NOW, tz=datetime.UTC)


def info(device: str, **labels: str) -> tuple[DeviceId, DeviceInfo, int]:
    d = DeviceId(device)
    return (d, DeviceInfo(device_id=d, labels=labels, inventory=SIMULATED_INVENTORY,
                          agent_version="1", updated_at=WHEN), 1)  # fmt: skip


def beat(device: str, at: float = NOW) -> m.Beat:
    return m.Beat(device=DeviceId(device), at=at, when=WHEN, revision=1)


def ids(hub: Hub, **params: str) -> list[str]:
    return [d["id"] for d in hub.view.page(parse_query(params), now=NOW + 1)["devices"]]


def total(hub: Hub, **params: str) -> int:
    return int(hub.view.page(parse_query(params), now=NOW + 1)["total"])


@pytest.fixture
def hub() -> Hub:
    hub = Hub(liveness_timeout=30.0)
    hub.feed(m.InfosSeen(infos=tuple(
        info(f"dev-{i:03}", site="lab" if i % 2 else "shop", model=f"pi{4 + i % 2}")
        for i in range(100)
    )))  # fmt: skip
    hub.feed(m.BeatsSeen(beats=tuple(beat(f"dev-{i:03}") for i in range(0, 100, 3))))
    hub.step(now=NOW)
    return hub


def test_selectors_names_and_states_filter(hub: Hub) -> None:
    assert total(hub, selector="site=lab") == 50
    assert ids(hub, selector="site=lab,model in (pi5)", name="dev-00") == [
        "dev-001", "dev-003", "dev-005", "dev-007", "dev-009"]  # fmt: skip
    assert ids(hub, selector="site!=lab", state="online", name="dev-01") == ["dev-012", "dev-018"]
    assert total(hub, state="unreachable") == 66
    assert ids(hub, selector="!site") == []
    assert total(hub, selector="site") == 100


def test_paging_counts_every_match(hub: Hub) -> None:
    page = hub.view.page(parse_query({"size": "30", "page": "3"}), now=NOW)
    assert page["total"] == 100
    assert [d["id"] for d in page["devices"]] == [f"dev-{i:03}" for i in range(90, 100)]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"selector": "site in (a"}, "without its ')'"),
        ({"selector": "site in (a,)"}, "an empty value"),
        ({"selector": "si te=x"}, "invalid label key"),
        ({"selector": "site=a,,b=c"}, "an empty term"),
        ({"selector": "x" * 3000}, "at most 2048"),
        ({"state": "sleeping"}, "state must be one of"),
        ({"page": "-1"}, "page must be a whole number"),
        ({"size": "100000"}, "size must be 1..500"),
    ],
)
def test_a_filter_that_does_not_parse_says_why(params: dict[str, str], says: str) -> None:
    with pytest.raises(QueryError, match=says.replace("(", r"\(").replace(")", r"\)")):
        parse_query(params)


def test_many_changes_are_one_version_and_silence_is_noticed() -> None:
    hub = Hub(liveness_timeout=5.0)
    hub.feed(m.InfosSeen(infos=tuple(info(f"d{i}", site="x") for i in range(10_000))))
    for i in range(10_000):  # one batch each, as 10,000 devices changing at once
        hub.feed(m.BeatsSeen(beats=(beat(f"d{i}"),)))
    assert hub.step(now=NOW)
    assert hub.version == 1
    assert not hub.step(now=NOW + 1)
    assert hub.version == 1
    assert hub.overview()["devices"]["total"] == 10_000
    assert hub.step(now=NOW + 6)
    assert hub.version == 2
    assert hub.view.overview(now=NOW + 6)["devices"]["unreachable"] == 10_000


def test_a_forgotten_device_leaves_and_reports_show() -> None:
    hub = Hub(liveness_timeout=30.0)
    hub.feed(m.InfosSeen(infos=(info("a", site="x"), info("b", site="x"))))
    hub.feed(m.ReportsSeen(reports=(m.Report(
        device=DeviceId("a"), deployment=DeploymentName("web"), phase=Phase.FAILED,
        desired_revision=7, message="pull failed", updated_at=WHEN),)))  # fmt: skip
    hub.feed(m.InfosSeen(infos=((DeviceId("b"), None, 2),)))
    hub.step(now=NOW)
    page = hub.view.page(parse_query({"state": "failing"}), now=NOW)
    assert [d["id"] for d in page["devices"]] == ["a"]
    assert page["devices"][0]["deployments"][0]["message"] == "pull failed"
    assert ids(hub, selector="site=x") == ["a"]
