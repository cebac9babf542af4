"""Targeting without actors: selectors against labels, both ways, frozen while invalid."""

from __future__ import annotations

from fleet.actors.operator.selectors import parse_selector
from fleet.actors.operator.targeting import Targeting
from fleet.contracts import DeviceId

D1, D2, D3 = DeviceId("d1"), DeviceId("d2"), DeviceId("d3")
WEB, API = ("ns", "web"), ("ns", "api")
PARIS = parse_selector({"matchLabels": {"site": "paris"}})
EVERY = parse_selector({})


def test_a_selector_targets_the_matching_devices() -> None:
    t = Targeting()
    t.set_labels(D1, {"site": "paris"})
    t.set_labels(D2, {"site": "oslo"})
    assert t.target(WEB, PARIS) == {D1}
    assert t.target(API, EVERY) == {D1, D2}
    assert len(t) == 2


def test_label_changes_retarget_both_ways_and_only_the_active_deployments() -> None:
    t = Targeting()
    t.set_labels(D1, {"site": "paris"})
    t.set_labels(D2, {"site": "paris"})
    t.target(WEB, PARIS)
    assert t.set_labels(D2, {"site": "oslo"})
    assert not t.set_labels(D1, {"site": "paris"})  # unchanged
    t.set_labels(D3, {"site": "paris"})
    changes = t.retarget([D2, D3], {WEB: PARIS})
    assert changes[WEB].added == [D3]
    assert changes[WEB].removed == [D2]
    assert t.targets(WEB) == {D1, D3}
    assert t.retarget([D2, D3], {WEB: PARIS}) == {}  # nothing new


def test_a_device_without_labels_is_targeted_by_nobody() -> None:
    t = Targeting()
    t.set_labels(D1, {})
    t.target(API, EVERY)
    assert t.targets(API) == {D1}
    t.set_labels(D1, None)  # info deleted, or forgotten
    assert t.retarget([D1], {API: EVERY})[API].removed == [D1]
    assert t.labels(D1) is None


def test_an_invalid_spec_keeps_the_targets_it_had() -> None:
    t = Targeting()
    t.set_labels(D1, {"site": "paris"})
    t.target(WEB, PARIS)
    t.set_labels(D2, {"site": "paris"})
    assert t.target(WEB, None) == {D1}  # frozen: no new match
    t.drop(WEB)
    assert t.targets(WEB) == frozenset()
