"""Kubernetes objects from hostile bytes (no servers): one bad object never hides another.

A real API server stores a spec nested 10,000 deep (``score`` preserves unknown fields);
``json.loads`` and msgspec both raise RecursionError at about 1,000.
"""

from __future__ import annotations

import json

import pytest

from fleet.actors.operator.spec import parse_spec
from fleet.errors import SpecError
from fleet.runtime.kube.decode import KubeDecodeError, decode_event, decode_list, decode_object

DEEP = b'{"a":' * 5000 + b"1" + b"}" * 5000


def obj(name: str, spec: bytes = b'{"selector":{}}', **meta: object) -> bytes:
    metadata = json.dumps({"name": name, "namespace": "ns", "generation": 2, **meta}).encode()
    return b'{"kind":"Deployment","metadata":' + metadata + b',"spec":' + spec + b"}"


def listing(*items: bytes) -> bytes:
    return b'{"kind":"DeploymentList","metadata":{"resourceVersion":"42"},"items":[' + (
        b",".join(items) + b"]}"
    )


def test_a_deep_spec_travels_as_bytes_and_its_neighbours_are_untouched() -> None:
    deep_managed = obj("managed", managedFields=[{"fieldsV1": {"f": {"g": {"h": 1}}}}])
    data = listing(obj("good"), obj("deep", DEEP), obj("big", b'"' + b"x" * 1_000_000 + b'"'),
                   obj("str", b'"not an object"'), deep_managed)  # fmt: skip
    result = decode_list(data, what="list deployments")
    assert [o.name for o in result.objects] == ["good", "deep", "big", "str", "managed"]
    assert result.resource_version == "42"
    assert result.problems == ()
    deep = result.objects[1]
    assert deep.spec == DEEP
    assert deep.generation == 2
    with pytest.raises(SpecError, match="nests 5000 levels deep"):
        parse_spec(name="deep", spec_json=deep.spec)
    with pytest.raises(SpecError, match="too large"):
        parse_spec(name="big", spec_json=result.objects[2].spec)
    with pytest.raises(SpecError, match="spec must be an object, got 'not an object'"):
        parse_spec(name="str", spec_json=result.objects[3].spec)


def test_deep_metadata_fields_are_dropped_and_bad_objects_named() -> None:
    deep_meta = b'{"metadata":{"name":"m","namespace":"ns","managedFields":' + DEEP + b"}}"
    bad_types = obj("typed", generation="two")
    data = listing(deep_meta, bad_types, b'{"metadata":{}}', b"17", obj("ok"))
    result = decode_list(data, what="list deployments")
    assert [o.name for o in result.objects] == ["m", "ok"]
    assert len(result.problems) == 3
    assert "ns/typed" in result.problems[0]
    assert "metadata.name is missing" in result.problems[1]


def test_events_and_objects() -> None:
    added = decode_event(b'{"type":"ADDED","object":' + obj("x", DEEP) + b"}")
    assert added.obj is not None
    assert added.obj.spec == DEEP
    gone = decode_event(b'{"type":"ERROR","object":{"code":410,"message":"too old"}}')
    assert (gone.code, gone.message) == (410, "too old")
    mark = decode_event(b'{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}')
    assert mark.resource_version == "9"
    broken = decode_event(b'{"type":"MODIFIED","object":{"metadata":{"name":5}}}')
    assert broken.problem is not None
    assert decode_event(b"[1,2").problem is not None
    assert decode_object(obj("y")).finalizers == ()
    with pytest.raises(KubeDecodeError):
        decode_list(b'"nope"', what="list")


def terms(n: int) -> bytes:
    return json.dumps(
        {"selector": {"matchExpressions": [{"key": f"k{i}", "operator": "Exists"}
                                           for i in range(n)]},
         "score": {"type": "podman", "containers": [{"name": "w", "image": "i"}]}}
    ).encode()  # fmt: skip


def test_selector_bounds_and_short_messages() -> None:
    with pytest.raises(SpecError, match="spec is too large: 399000 bytes"):
        parse_spec(name="web", spec_json=terms(10_000))
    with pytest.raises(SpecError, match="100 requirements"):
        parse_spec(name="web", spec_json=terms(100))
    labels = json.dumps({"selector": {"matchLabels": {"site": 5}}, "score": {}}).encode()
    with pytest.raises(SpecError, match=r"matchLabels\['site'\]: invalid label value 5"):
        parse_spec(name="web", spec_json=labels)
    huge = json.dumps({"selector": {"matchLabels": {"site": "x" * 200_000}}}).encode()
    with pytest.raises(SpecError) as info:
        parse_spec(name="web", spec_json=huge)
    assert len(str(info.value)) < 300
