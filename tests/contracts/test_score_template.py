"""A score with per-device templates: its canonical bytes, and a score without any."""

from __future__ import annotations

import pytest

from fleet.contracts import convert_score, encode_score, score_hash
from fleet.contracts.score_template import (
    MAX_TEMPLATED_FIELDS,
    encode_template_score,
    may_hold_templates,
    templated_fields,
)
from fleet.errors import ContractError

from . import samples


def test_a_score_without_templates_is_encoded_as_ever() -> None:
    raw = samples.score_json()
    encoded, fields = encode_template_score(raw)
    assert fields == []
    assert encoded == encode_score(convert_score(raw))
    assert not may_hold_templates(encoded)


def test_templated_strings_are_found_and_kept_in_canonical_order() -> None:
    one = {
        "type": "podman",
        "containers": [{"name": "a", "image": "r.example/{{ device.labels.site }}:1",
                        "restart_policy": "always", "command": ["x", "{{ device.id }}"],
                        "env": {"A": "{{ device.id }}", "B": "b"}}],
    }  # fmt: skip
    two = {
        "containers": [{"env": {"A": "{{ device.id }}", "B": "b"},
                        "command": ["x", "{{ device.id }}"],
                        "image": "r.example/{{ device.labels.site }}:1", "name": "a"}],
        "type": "podman",
    }  # fmt: skip
    encoded, fields = encode_template_score(one)
    assert encode_template_score(two)[0] == encoded  # key order and defaults do not matter
    assert [f[0] for f in fields] == [(0, "image", None), (0, "command", 1), (0, "env", "A")]
    assert b'"image":"r.example/{{ device.labels.site }}:1"' in encoded
    assert may_hold_templates(encoded)


def test_a_templated_score_is_still_checked_as_a_score() -> None:
    with pytest.raises(ContractError, match="container name"):
        encode_template_score({"type": "podman", "containers": [
            {"name": "Bad_Name", "image": "{{ device.id }}"}]})  # fmt: skip
    many = {f"V{i}": "{{ device.id }}" for i in range(MAX_TEMPLATED_FIELDS + 1)}
    with pytest.raises(ContractError, match=f"at most {MAX_TEMPLATED_FIELDS}"):
        templated_fields({"containers": [{"env": many}]})
    assert templated_fields({"containers": "nope"}) == []
    assert templated_fields(["not", "a", "score"]) == []


def test_the_score_hash_of_a_score_without_templates_is_unchanged() -> None:
    # locked as in test_score_hash: the same bytes, so the same hash across the upgrade
    raw = {"type": "podman", "containers": [{"name": "a", "image": "b"}]}
    encoded, _ = encode_template_score(raw)
    assert encoded == b'{"type":"podman","containers":[{"name":"a","image":"b"}]}'
    assert score_hash(convert_score(raw)) == "f32246d14042ac3a"
    assert encoded == encode_score(convert_score(raw))
