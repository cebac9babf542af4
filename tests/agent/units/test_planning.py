"""Which containers a reconcile pass makes, keeps and removes (no podman)."""

from __future__ import annotations

from fleet.actors.agent.planning import plan_pass
from fleet.contracts import ContainerSpec, DeploymentName, DeviceId, PodmanScore
from fleet.runtime.podman.port import SPEC_HASH_LABEL, Container, spec_hash

DEVICE, DEPLOYMENT = DeviceId("pi-1"), DeploymentName("web")
WEB = ContainerSpec(name="web", image="registry.example/web:1")
SIDE = ContainerSpec(name="side", image="registry.example/side:1")


def found(name: str, spec: ContainerSpec | None, cid: str) -> Container:
    labels = {SPEC_HASH_LABEL: spec_hash(spec)} if spec is not None else {}
    return Container(id=cid, name=f"/fleet-pi-1-web-{name}", labels=labels, state="running")


def test_nothing_found_makes_every_container() -> None:
    wanted, current, strays, changed = plan_pass(
        DEVICE, DEPLOYMENT, PodmanScore(containers=[WEB, SIDE]), []
    )
    assert list(wanted) == ["fleet-pi-1-web-web", "fleet-pi-1-web-side"]
    assert (current, strays) == ({}, [])
    assert changed == ["fleet-pi-1-web-web", "fleet-pi-1-web-side"]


def test_same_spec_is_kept_other_spec_replaced_unknown_and_second_copies_removed() -> None:
    kept = found("web", WEB, "a")
    outdated = found("side", WEB, "b")  # made from another spec
    twin = found("web", WEB, "c")  # a second container under a wanted name
    gone = found("old", WEB, "d")  # no longer in the score
    wanted, current, strays, changed = plan_pass(
        DEVICE, DEPLOYMENT, PodmanScore(containers=[WEB, SIDE]), [kept, outdated, twin, gone]
    )
    assert current == {"fleet-pi-1-web-web": kept, "fleet-pi-1-web-side": outdated}
    assert strays == [twin, gone]
    assert changed == ["fleet-pi-1-web-side"]
    assert wanted["fleet-pi-1-web-side"] is SIDE


def test_a_container_without_its_spec_hash_is_remade() -> None:
    bare = found("web", None, "a")
    _, current, strays, changed = plan_pass(
        DEVICE, DEPLOYMENT, PodmanScore(containers=[WEB]), [bare]
    )
    assert current == {"fleet-pi-1-web-web": bare}
    assert strays == []
    assert changed == ["fleet-pi-1-web-web"]
