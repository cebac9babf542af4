"""A Deployment's score with a field this operator does not know is InvalidSpec naming it
(re-encoding would silently drop it), except another score type's own field, which a
merge patch that changed ``type`` leaves behind and which changes nothing."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from fleet.actors.operator.spec import parse_spec
from fleet.contracts import KvmScore, decode_score
from fleet.errors import SpecError

DISK: dict[str, Any] = {"url": "https://images.example/debian.qcow2"}
KVM: dict[str, Any] = {"type": "kvm", "disk": DISK}


def spec(score: dict[str, Any]) -> bytes:
    return json.dumps({"selector": {}, "score": score}).encode()


@pytest.mark.parametrize(
    ("score", "field"),
    [
        ({**KVM, "memory_mb": 2048}, "spec.score.memory_mb"),  # a typo of memory_mib
        ({**KVM, "disk": {**DISK, "checksum": "x"}}, "spec.score.disk.checksum"),
        (
            {"type": "podman", "containers": [{"name": "a", "image": "b", "gpus": 1}]},
            "spec.score.containers[0].gpus",
        ),
    ],
)
def test_an_unknown_field_is_refused_naming_it(score: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError, match=rf"^{re.escape(field)}: unknown field"):
        parse_spec(name="web", spec_json=spec(score))


def test_another_types_field_left_by_a_merge_patch_is_dropped() -> None:
    leftover = {**KVM, "containers": [{"name": "a", "image": "b"}]}
    parsed = parse_spec(name="web", spec_json=spec(leftover))
    score = decode_score(parsed.desired)
    assert isinstance(score, KvmScore)
    assert b"containers" not in parsed.desired
