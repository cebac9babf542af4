"""The privilege policy in the operator: a score that asks for a privilege its Deployment
was not allowed is InvalidSpec naming the field, and no entry is written for it.

The real operator against the API emulator and a real nats-server, with simulated devices.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from fleet.actors.operator.app import Operator
from fleet.actors.operator.privileges import check_privileges, parse_privileges
from fleet.actors.operator.spec import parse_spec
from fleet.errors import SpecError
from tests.fixtures.kube import KubeCluster

from ..sim import Fleet, eventually

SEL = {"matchLabels": {"role": "edge"}}


def score(**fields: Any) -> dict[str, Any]:
    container = {"name": "cam", "image": "localhost/busybox:test", **fields}
    return {"type": "podman", "containers": [container]}


def test_a_privileged_score_needs_its_deployments_permission(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1"], {"role": "edge"})
    start_operator(liveness_timeout=600.0)
    kube.create_deployment("ns", "plain", selector=SEL, score=score())
    kube.create_deployment(
        "ns", "cam", selector=SEL, score=score(devices=["/dev/video0"], host_network=True)
    )
    eventually(lambda: kube.ready("ns", "cam").get("reason") == "InvalidSpec", timeout=30)
    message = kube.ready("ns", "cam")["message"]
    assert message.startswith("spec.score.containers[0].host_network is a privilege"), message
    eventually(lambda: "d1.plain" in fleet.desired(), timeout=30)  # the neighbour proceeds
    assert "d1.cam" not in fleet.desired()

    kube.patch_deployment_spec("ns", "cam", {"privileges": {"hostNetwork": True}})
    eventually(
        lambda: "containers[0].devices" in kube.ready("ns", "cam").get("message", ""), timeout=30
    )
    assert "d1.cam" not in fleet.desired()

    kube.patch_deployment_spec("ns", "cam", {"privileges": {"hostNetwork": True, "devices": True}})
    eventually(lambda: "d1.cam" in fleet.desired(), timeout=30)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("yes", "spec.privileges must be an object"),
        ({"hostNetwork": "true"}, "spec.privileges.hostNetwork must be true or false"),
        ({"root": True}, "spec.privileges.root: unknown privilege"),
    ],
)
def test_a_malformed_privileges_field_names_itself(value: object, error: str) -> None:
    with pytest.raises(SpecError, match=error):
        parse_privileges(value)


def test_each_privileged_field_needs_its_own_grant() -> None:
    asks = {
        "privileged": True,
        "host_network": True,
        "devices": ["/dev/x"],
        "cap_add": ["NET_ADMIN"],
    }
    grants = {"privileged": "privileged", "host_network": "hostNetwork", "devices": "devices",
              "cap_add": "capabilities"}  # fmt: skip
    for field, value in asks.items():
        with pytest.raises(SpecError, match=f"spec.privileges.{grants[field]}: true"):
            check_privileges(score(**{field: value}), frozenset())
        check_privileges(score(**{field: value}), parse_privileges({grants[field]: True}))
    check_privileges(score(privileged=False, devices=[]), frozenset())


def test_a_score_field_this_operator_does_not_know_is_invalid_spec() -> None:
    """Re-encoding would silently drop it; the operator names it instead."""
    spec = {"selector": SEL, "score": score(gpus="all")}
    with pytest.raises(SpecError, match=r"spec\.score\.containers\[0\]\.gpus: unknown field"):
        parse_spec(name="cam", spec_json=json.dumps(spec).encode())
    templated = score(
        env={"SITE": "{{ device.labels.site }}"}, volumes=[{"name": "v", "path": "/v"}]
    )
    assert parse_spec(
        name="cam", spec_json=json.dumps({"selector": SEL, "score": templated}).encode()
    )


def test_a_namespace_the_admin_left_out_may_not_grant_privileges(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1"], {"role": "edge"})
    start_operator(liveness_timeout=600.0, privileged_namespaces=frozenset({"lab"}))
    asks = score(host_network=True)
    kube.create_deployment(
        "lab", "net", spec={"selector": SEL, "score": asks, "privileges": {"hostNetwork": True}}
    )
    kube.create_deployment(
        "shop", "net2", spec={"selector": SEL, "score": asks, "privileges": {"hostNetwork": True}}
    )
    kube.create_deployment("shop", "plain", selector=SEL, score=score())
    eventually(lambda: kube.ready("shop", "net2").get("reason") == "InvalidSpec", timeout=30)
    message = kube.ready("shop", "net2")["message"]
    assert message.startswith("spec.privileges: Deployments in namespace 'shop' may not"), message
    eventually(lambda: {"d1.net", "d1.plain"} <= set(fleet.desired()), timeout=30)
    assert "d1.net2" not in fleet.desired()  # lab's privileged one runs; shop's never


def test_the_namespace_rule_refuses_any_grant_even_one_unused() -> None:
    spec = json.dumps({"selector": {}, "score": score(), "privileges": {"devices": True}})
    with pytest.raises(SpecError, match="namespace 'shop' may not be granted privileges"):
        parse_spec(name="x", spec_json=spec.encode(), privileges_forbidden_in="shop")
    parse_spec(name="x", spec_json=spec.encode())  # elsewhere: fine
