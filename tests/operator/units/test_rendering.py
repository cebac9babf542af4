"""A templated score rendered per device: the spec reader, the renderer, a rollout's rule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleet.actors.operator.rendering import Renderer, score_template
from fleet.actors.operator.spec import parse_spec
from fleet.contracts import DeviceId, convert_score, decode_score, encode_score, score_hash
from fleet.contracts.score_template import encode_template_score
from fleet.errors import SpecError
from fleet.runtime.kube.revisions import RevisionRecord, parse_revision
from tests.scores import podman

D1, D2, D3 = DeviceId("d1"), DeviceId("d2"), DeviceId("d3")
PLAIN = {
    "type": "podman",
    "containers": [
        {"name": "web", "image": "localhost/busybox:test", "env": {"MODE": "x"},
         "restart_policy": "always"}
    ],
}  # fmt: skip
TEMPLATED = {
    "type": "podman",
    "containers": [{
        "name": "web",
        "image": "registry.example/{{ device.labels.site }}/web:1",
        "command": ["serve", "--id={{ device.id }}"],
        "env": {"SITE": "{{ device.labels.site | upper }}",
                "ZONE": "{{ device.labels.zone | default('lab') }}", "PLAIN": "x"},
    }],
}  # fmt: skip
C0 = "spec.score.containers[0]"


def spec(score: Any) -> bytes:
    return json.dumps({"selector": {}, "score": score}).encode()


def test_a_score_without_templates_keeps_its_bytes_and_hash() -> None:
    parsed = parse_spec(name="web", spec_json=spec(PLAIN))
    score = convert_score(PLAIN)
    assert parsed.desired == encode_score(score)  # what a release without templates wrote
    assert parsed.template is None
    assert encode_template_score(PLAIN) == (encode_score(score), [])
    assert score_hash(decode_score(parsed.desired)) == score_hash(score)
    assert score_template(parsed.desired) is None
    render = Renderer()
    render.seed(None, parsed.desired)
    render.targets({D1: {"site": "a"}, D2: {}})
    assert not render.templated
    assert render.value(D1, parsed.desired) is parsed.desired  # the same object: no copy
    assert render.value(D2, parsed.desired) is parsed.desired
    assert render.unrenderable() == []


def test_each_device_gets_its_own_validated_rendering() -> None:
    parsed = parse_spec(name="web", spec_json=spec(TEMPLATED))
    assert parsed.template is not None
    assert b"{{ device.labels.site }}" in parsed.desired  # the revision: the score as written
    assert score_template(parsed.desired) == parsed.template  # a revision read back
    render = Renderer()
    render.targets({D1: {"site": "paris"}, D2: {"site": "oslo", "zone": "n"}, D3: {}})
    render.seed(parsed.template, parsed.desired)
    one, two = render.value(D1, parsed.desired), render.value(D2, parsed.desired)
    assert one is not None
    assert two is not None
    first, second = podman(one).containers[0], podman(two).containers[0]
    assert first.image == "registry.example/paris/web:1"
    assert first.command == ["serve", "--id=d1"]
    assert first.env == {"SITE": "PARIS", "ZONE": "lab", "PLAIN": "x"}
    assert second.env == {"SITE": "OSLO", "ZONE": "n", "PLAIN": "x"}
    assert render.value(D3, parsed.desired) is None
    assert render.unrenderable() == [{
        "device": "d3",
        "reason": "spec.score.containers[0].image: device has no label 'site'",
    }]  # fmt: skip
    # a relabel: renderable again, and the unrenderable list follows
    assert render.targets({D3: {"site": "rome"}}) == [D3]
    assert render.value(D3, parsed.desired) is not None
    assert render.unrenderable() == []
    assert render.targets({D3: {"site": "rome"}}) == []  # unchanged labels: nothing to redo


def test_a_rendered_value_must_be_a_valid_score() -> None:
    parsed = parse_spec(name="web", spec_json=spec(TEMPLATED))
    render = Renderer()
    render.targets({D1: {"site": "Not An Image Path"}})
    render.seed(parsed.template, parsed.desired)
    assert render.value(D1, parsed.desired) is None
    [listed] = render.unrenderable()
    assert listed["reason"].startswith(
        "spec.score (rendered): invalid score at `containers[0].image`"
    )


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("env", {"SITE": "{{ device.labels.site"}, f"{C0}.env.SITE: template does not parse"),
        ("env", {"SITE": "{{ devise.id }}"}, f"{C0}.env.SITE: unknown variable 'devise'"),
        ("command", ["a", "{{ device.id | shout }}"], f"{C0}.command[1]: unknown filter 'shout'"),
        ("image", "r.example/{{ ''.__class__ }}:1", f"{C0}.image: the constant ''"),
    ],
)  # fmt: skip
def test_a_bad_template_is_an_invalid_spec_naming_its_field(
    field: str, value: Any, where: str
) -> None:
    score = json.loads(json.dumps(PLAIN))
    score["containers"][0][field] = value
    with pytest.raises(SpecError) as caught:
        parse_spec(name="web", spec_json=spec(score))
    assert str(caught.value).startswith(where), str(caught.value)


def test_templates_do_not_hide_other_spec_errors() -> None:
    score = json.loads(json.dumps(TEMPLATED))
    score["containers"][0]["name"] = "Not_A_Label"
    with pytest.raises(SpecError, match="container name"):
        parse_spec(name="web", spec_json=spec(score))
    score = json.loads(json.dumps(TEMPLATED))
    score["containers"][0]["env"] = {f"V{i}": "{{ device.id }}" for i in range(129)}
    with pytest.raises(SpecError, match="at most 128 allowed"):
        parse_spec(name="web", spec_json=spec(score))


def test_a_rollout_compares_revisions_not_renderings() -> None:
    old = parse_spec(name="web", spec_json=spec(PLAIN)).desired
    new_spec = parse_spec(name="web", spec_json=spec(TEMPLATED))
    new = new_spec.desired
    render = Renderer()
    render.targets({D1: {"site": "paris"}, D2: {"site": "oslo"}, D3: {}})
    render.seed(new_spec.template, new)
    seen: list[bytes | None] = []

    def rule(device: DeviceId, entry: bytes | None) -> bytes | None:
        seen.append(entry)  # what the rollout sees: a revision's bytes, or a foreign entry
        return new if device == D1 else entry

    want = render.wrap(rule, revisions=(new, old))
    d1_value = render.value(D1, new)
    assert want(D1, old) == d1_value  # given the new revision: its rendering for d1
    assert want(D1, d1_value) == d1_value  # holds it already: the rollout saw `new`
    assert seen[-1] is new
    assert want(D2, old) is old  # kept: the stable entry as it is
    assert want(D2, b"foreign") == b"foreign"  # an entry of neither revision: kept as is
    assert want(D3, None) is None
    assert render.wrap(rule, revisions=(old,)) is rule  # no template anywhere: no wrapping


def test_a_relabel_refreshes_the_rendering_a_rollout_keeps() -> None:
    new_spec = parse_spec(name="web", spec_json=spec(TEMPLATED))
    new = new_spec.desired
    render = Renderer()
    render.targets({D1: {"site": "paris"}})
    render.seed(new_spec.template, new)
    paris = render.value(D1, new)

    def keep(_device: DeviceId, entry: bytes | None) -> bytes | None:
        return entry  # a device the rollout has not reached: keeps what it has

    render.targets({D1: {"site": "rome"}})
    rome = render.value(D1, new)
    assert paris is not None
    assert rome is not None
    assert rome != paris
    # the entry it has is still known as a rendering of `new`: kept, rendered anew
    assert render.wrap(keep, revisions=(new,))(D1, paris) == rome
    render.targets({D1: {}})  # its label gone: it can have no rendering of `new`
    assert render.wrap(keep, revisions=(new,))(D1, paris) is None


def test_a_templated_revision_read_back_is_the_spec_s_score() -> None:
    parsed = parse_spec(name="web", spec_json=spec(TEMPLATED))
    item = {
        "metadata": {"name": "web-r2", "ownerReferences": [{"uid": "u1"}]},
        "spec": {"deployment": "web", "revision": 2, "score": json.loads(parsed.desired)},
    }
    record = parse_revision(item, deployment="web", uid="u1")
    assert isinstance(record, RevisionRecord)
    assert record.desired == parsed.desired  # the same revision: no new one at a restart
