"""Host paths in the operator: a volume's ``host_path`` needs ``spec.privileges.hostPaths``
(InvalidSpec naming the field otherwise, no entry written), and a denied path is
InvalidSpec whatever the grants.

The real operator against the API emulator and a real nats-server, with simulated devices.
"""

from __future__ import annotations

import json
import re
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
FIELD = "spec.score.containers[0].volumes[1].host_path"


def score(host_path: str = "/srv/site") -> dict[str, Any]:
    volumes = [{"name": "data", "path": "/data"}, {"host_path": host_path, "path": "/site",
               "read_only": True}]  # fmt: skip
    container = {"name": "cam", "image": "localhost/busybox:test", "volumes": volumes}
    return {"type": "podman", "containers": [container]}


def test_a_host_path_needs_its_deployments_permission(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1"], {"role": "edge"})
    start_operator(liveness_timeout=600.0)
    kube.create_deployment("ns", "cam", selector=SEL, score=score())
    eventually(lambda: kube.ready("ns", "cam").get("reason") == "InvalidSpec", timeout=30)
    message = kube.ready("ns", "cam")["message"]
    assert message.startswith(f"{FIELD} is a privilege this Deployment is not allowed"), message
    assert "spec.privileges.hostPaths: true" in message
    assert "d1.cam" not in fleet.desired()

    kube.patch_deployment_spec("ns", "cam", {"privileges": {"hostPaths": True}})
    eventually(lambda: "d1.cam" in fleet.desired(), timeout=30)


def test_grants_are_per_kind_and_a_denied_path_is_refused_whatever_the_grants() -> None:
    with pytest.raises(SpecError, match=re.escape(FIELD)):
        check_privileges(score(), parse_privileges({"devices": True, "privileged": True}))
    check_privileges(score(), parse_privileges({"hostPaths": True}))
    spec = {"selector": SEL, "score": score("/etc/shadow"), "privileges": {"hostPaths": True}}
    with pytest.raises(SpecError, match=r"volumes\[1\]\.host_path.*is under /etc") as caught:
        parse_spec(name="cam", spec_json=json.dumps(spec).encode())
    assert "spec.score" in str(caught.value)
