"""fleetctl status names the targets given no entry because they cannot run the score."""

from __future__ import annotations

from collections.abc import Callable

from fleet.actors.operator.app import Operator
from tests.operator.sim import Fleet, eventually

from .conftest import Result

VM = """\
apiVersion: fleet.nationtech.io/v1alpha1
kind: Deployment
metadata: {name: vm, namespace: default}
spec:
  selector: {matchLabels: {site: lab}}
  score:
    type: kvm
    disk: {url: /var/lib/fleet/images/tiny.qcow2}
"""


def test_status_lists_the_devices_that_cannot_run_the_score(
    ctl: Callable[..., Result],
    fleet: Fleet,
    start_operator: Callable[..., Operator],
    manifest: Callable[..., str],
) -> None:
    fleet.join(["d1"], {"site": "lab"}, runtimes=["podman", "kvm"])
    fleet.join(["d2"], {"site": "lab"})  # podman only
    start_operator(liveness_timeout=60)
    assert ctl("apply", "-f", manifest(VM, "vm.yaml")).code == 0
    eventually(lambda: set(fleet.desired()) == {"d1.vm"}, timeout=30)

    def listed() -> str:
        out = ctl("status", "vm").out
        assert "unrunnable: d2: its device-info lists no 'kvm' runtime" in out, out
        return out

    out = eventually(listed, timeout=30)
    assert "1 devices cannot run the score's type" in out
    (row,) = ctl("deployments", "-o", "json").json()
    assert [u["device"] for u in row["unrunnable"]] == ["d2"]
    assert row["reason"] == "DevicesUnrunnable"
