"""A Deployment's status from its aggregate and state (pure), and the channel classes
come through (batched: one notice per batch)."""

from __future__ import annotations

from typing import Any

from fleet.actors.operator.status import Aggregate, deployment_status
from fleet.contracts import DeviceId
from fleet.runtime.actorkit.batched import Batched

from .fakes import Ref


def status(**kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "generation": 3, "aggregate": Aggregate(), "error": None, "conflict_with": None,
        "name": "web", "active": True, "deleting": False, "entries": 0, "writing": 0,
        "previous": None,
    }  # fmt: skip
    return deployment_status(**{**args, **kw})


def ready(s: dict[str, Any]) -> tuple[str, str]:
    cond = s["conditions"][0]
    return cond["status"], cond["reason"]


def test_the_ready_condition_by_state() -> None:
    agg = Aggregate()
    agg.set(DeviceId("d1"), "running")
    assert ready(status(aggregate=agg)) == ("True", "AllRunning")
    assert ready(status(error="spec.score is missing")) == ("False", "InvalidSpec")
    assert ready(status(active=False)) == ("Unknown", "Syncing")
    assert ready(status(deleting=True, entries=4)) == ("False", "Deleting")
    assert ready(status(aggregate=agg, writing=1)) == ("False", "Writing")
    agg.set(DeviceId("d2"), "failed", "boom")
    assert ready(status(aggregate=agg)) == ("False", "DevicesFailing")
    agg.set(DeviceId("d2"), "pending")
    assert ready(status(aggregate=agg)) == ("False", "Progressing")


def test_a_name_conflict_shows_nothing_of_the_aggregate() -> None:
    agg = Aggregate()
    agg.set(DeviceId("d1"), "failed", "boom")
    s = status(aggregate=agg, conflict_with="team-a/web")
    assert ready(s) == ("False", "NameConflict")
    assert "team-a/web" in s["conditions"][0]["message"]
    assert set(s["aggregate"].values()) == {0}
    assert s["failingDevices"] == []
    assert s["observedGeneration"] == 3


def test_the_transition_time_moves_only_with_the_status() -> None:
    first = status()
    previous = {**first["conditions"][0], "lastTransitionTime": "2020-01-01T00:00:00Z"}
    same = status(previous=previous)
    assert same["conditions"][0]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    other = status(active=False, previous=previous)
    assert other["conditions"][0]["lastTransitionTime"] != "2020-01-01T00:00:00Z"


def test_a_batch_costs_one_notice_and_nothing_is_lost() -> None:
    owner = Ref("deployment")
    channel: Batched[int] = Batched(owner, "drain")
    for i in range(1000):
        channel.put(i)
    assert owner.told == ["drain"]
    assert channel.take() == list(range(1000))
    channel.put(1000)
    assert owner.told == ["drain", "drain"]  # a new batch, a new notice
    assert channel.take() == [1000]
    assert channel.take() == []
