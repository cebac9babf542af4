"""Per-device templates belong to podman scores: kvm and kubernetes ones are verbatim."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from fleet.actors.operator.spec import parse_spec
from fleet.contracts import convert_score, encode_score
from fleet.contracts.score_template import encode_template_score, templated_fields
from fleet.errors import SpecError

KVM = {
    "type": "kvm",
    "disk": {"url": "/images/tiny.qcow2"},
    "cloud_init": {"user_data": "## template: jinja\nhostname: {{ v1.local_hostname }}"},
}
KUBE = {
    "type": "kubernetes",
    "namespace": "shop",
    "manifests": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                   "data": {"tpl": "{{ .Values.x }}", "id": "{{ device.id }}"}}],
}  # fmt: skip


@pytest.mark.parametrize("score", [KVM, KUBE], ids=["kvm", "kubernetes"])
def test_markers_in_other_types_are_written_verbatim(score: Mapping[str, object]) -> None:
    assert templated_fields(score) == []
    encoded, fields = encode_template_score(score)
    assert fields == []
    assert encoded == encode_score(convert_score(score))
    spec = parse_spec(name="vm", spec_json=_spec(score))
    assert spec.template is None
    assert spec.desired == encoded


def test_containers_smuggled_into_a_kvm_score_are_not_templated() -> None:
    # a stray `containers` key is no field of a kvm score: ignored, never rendered (it
    # once reached the podman walker and failed with a KeyError, not a SpecError)
    score = {**KVM, "containers": [{"name": "x", "image": "{{ device.id }}"}]}
    encoded, fields = encode_template_score(score)
    assert fields == []
    assert b"containers" not in encoded


def test_a_marker_where_a_grammar_applies_is_invalid_spec_naming_the_field() -> None:
    score = {"type": "kvm", "disk": {"url": "/images/{{ device.id }}.qcow2"}}
    with pytest.raises(SpecError, match=r"disk\.url"):
        parse_spec(name="vm", spec_json=_spec(score))


def _spec(score: Mapping[str, object]) -> bytes:
    import msgspec

    return msgspec.json.encode({"selector": {}, "score": score})
