"""The emulator's pure parts: JSONPath for printer columns, ages, selectors, discovery."""

from __future__ import annotations

import datetime

import pytest

from fleet.devtools import _kube_discovery as discovery
from fleet.devtools._kube_selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_fields,
    parse_labels,
)
from fleet.devtools._kube_tables import crd_columns, human_age, jsonpath, to_table, wants_table
from fleet.devtools._kube_validation import unknown_fields

OBJ = {
    "metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z"},
    "status": {
        "conditions": [
            {"type": "Progressing", "status": "True"},
            {"type": "Ready", "status": "False"},
        ],
        "aggregate": {"targeted": 3},
        "labels": {"b": "2", "a": "1"},
    },
}


def test_jsonpath_as_printer_columns_use_it() -> None:
    assert jsonpath(".status.aggregate.targeted", OBJ) == [3]
    assert jsonpath('.status.conditions[?(@.type=="Ready")].status', OBJ) == ["False"]
    assert jsonpath(".status.conditions[1].type", OBJ) == ["Ready"]
    assert jsonpath(".status.conditions[*].type", OBJ) == ["Progressing", "Ready"]
    assert jsonpath(".status.missing.deeper", OBJ) == []
    assert jsonpath("{.metadata.name}", OBJ) == ["web"]
    assert jsonpath(".status.conditions[", OBJ) == []  # odd: no value, no exception


def test_cells_are_typed_and_missing_ones_empty() -> None:
    columns = [
        {"name": "Targeted", "type": "integer", "jsonPath": ".status.aggregate.targeted"},
        {"name": "Labels", "type": "string", "jsonPath": ".status.labels"},
        {"name": "Ready", "type": "boolean", "jsonPath": ".status.aggregate.targeted"},
        {"name": "Gone", "type": "string", "jsonPath": ".status.gone"},
    ]
    result = to_table([OBJ], plural="x", columns=columns, resource_version="7", include_object=None)
    assert result["kind"] == "Table"
    assert result["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in result["columnDefinitions"]] == [
        "Name",
        "Targeted",
        "Labels",
        "Ready",
        "Gone",
    ]
    row = result["rows"][0]
    assert row["cells"] == ["web", 3, '{"a":"1","b":"2"}', None, None]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert crd_columns({})[0]["name"] == "Age"  # no columns declared: Age, as the API server


def test_human_age_matches_kubectl() -> None:
    now = datetime.datetime(2020, 1, 10, tzinfo=datetime.UTC)

    def age(seconds: int) -> str:
        then = now - datetime.timedelta(seconds=seconds)
        return human_age(then.strftime("%Y-%m-%dT%H:%M:%SZ"), now=now)

    assert [age(s) for s in (0, 119, 120, 330, 600, 3 * 3600 + 60, 9 * 3600, 3 * 86400 + 3600)] == [
        "0s",
        "119s",
        "2m",
        "5m30s",
        "10m",
        "3h1m",
        "9h",
        "3d1h",
    ]
    assert human_age("garbage") == "<invalid>"
    assert human_age(None) == "<unknown>"


def test_label_selectors() -> None:
    labels = {"site": "lab", "tier": "3"}

    def match(selector: str) -> bool:
        return labels_match(parse_labels(selector), labels)

    assert match("site=lab")
    assert match("site==lab,tier")
    assert match("site in (lab, shop)")
    assert match("!gone")
    assert match("tier>2")
    assert match("site notin (shop)")
    assert match("")
    assert not match("site!=lab")
    assert not match("gone")
    assert not match("tier<3")
    for bad in ("site in (lab", "=x", "a b", "a=b)", "k>x", "-bad=1", "x in"):
        with pytest.raises(SelectorError):
            parse_labels(bad)
    with pytest.raises(SelectorError, match="longer than"):
        parse_labels("a=b," * 2000)


def test_field_selectors() -> None:
    event = {
        "metadata": {"name": "e", "namespace": "ns"},
        "involvedObject": {"kind": "Deployment", "name": "web"},
    }
    terms = parse_fields("involvedObject.kind=Deployment,involvedObject.name!=db", plural="events")
    assert fields_match(terms, event, plural="events")
    assert parse_fields(r"metadata.name=a\,b", plural="devices") == [("metadata.name", True, "a,b")]
    with pytest.raises(SelectorError, match=r"field label not supported: involvedObject\.kind"):
        parse_fields("involvedObject.kind=Deployment", plural="deployments")
    with pytest.raises(SelectorError, match="can't understand"):
        parse_fields("metadata.name", plural="deployments")


def test_discovery_lists_subresources_only_as_plural_status() -> None:
    dep = discovery.ServedResource(
        group="g.io",
        version="v1",
        plural="things",
        kind="Thing",
        singular="thing",
        namespaced=True,
        short_names=("th",),
        categories=("all-things",),
        subresources=("status",),
    )
    served = [dep, *discovery.CORE]
    listed = discovery.resource_list(served, "g.io/v1")
    assert listed is not None
    by_name = {r["name"]: r for r in listed["resources"]}
    assert by_name["things"]["shortNames"] == ["th"]
    assert "shortNames" not in by_name["things/status"]
    assert by_name["things/status"]["verbs"] == ["get", "patch", "update"]
    agg = discovery.aggregated(served, core=False)
    (item,) = agg["items"]
    (resource,) = item["versions"][0]["resources"]
    assert resource["subresources"][0]["subresource"] == "status"
    assert {
        r["resource"]
        for r in discovery.aggregated(served, core=True)["items"][0]["versions"][0]["resources"]
    } == {"namespaces", "events"}
    assert discovery.resource_list(served, "nope/v1") is None
    assert discovery.wants_aggregated(
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    )
    assert not discovery.wants_aggregated("application/json, */*")
    assert wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert not wants_table("application/json")


def test_unknown_fields_against_a_crd_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "items": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                    },
                },
            },
        },
    }
    good = {
        "apiVersion": "v1",
        "kind": "K",
        "metadata": {"anything": 1},
        "spec": {"labels": {"a": "b"}, "free": {"x": {"y": 1}}, "items": [{"name": "n"}]},
    }
    assert unknown_fields(good, schema) == []
    bad = {"spec": {"typo": 1, "items": [{"name": "n", "nmae": "m"}]}, "extra": 2}
    assert unknown_fields(bad, schema) == ["extra", "spec.items[0].nmae", "spec.typo"]
    deep: dict[str, object] = {}
    node = deep
    for _ in range(200):
        node["free"] = {}
        node = node["free"]  # type: ignore[assignment]
    nested = {"type": "object", "properties": {"free": None}}
    nested["properties"]["free"] = nested  # type: ignore[index]
    assert "nested deeper" in unknown_fields(deep, nested)[0]
