"""An enrolled device is targeted by its approved labels, never by the ones it reports.

A device approved by a token for ``site=paris`` then writes ``site=rome`` into its own
``device-info`` (it may: the key is its own). The Deployment for rome must not reach it,
the one for paris must; a person relabels it in its Device's ``spec.labels``, and only
then does rome reach it. A restarted operator targets by the approved labels from its
first write (nothing targets before the Device resources are listed), and invalid
``spec.labels`` target nothing. Real nats-server in auth mode, the API emulator, the
operator in process.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fleet.actors.operator.approvals import LabelApprovals, approval
from fleet.contracts import DeviceId
from fleet.runtime.kube.client import KubeObject
from tests.budgets import budget

from .test_tokens import make_token
from .world import SimDevice, World

pytestmark = pytest.mark.timeout(120)

NAMESPACE = "labels"
SCORE = {"type": "podman", "containers": [{"name": "web", "image": "localhost/busybox:test"}]}


def enrolled(world: World, device_id: str, labels: dict[str, str]) -> tuple[SimDevice, Path]:
    device = SimDevice(device_id)
    reply = world.enroll(device, token=make_token(world, labels=labels), labels=labels)
    assert reply.status == "approved", reply
    assert reply.jwt is not None
    return device, device.creds(world.directory, reply.jwt)


def targeted(world: World, device: str, deployment: str, expected: bool) -> None:
    """Wait until ``device`` has (or has not) a desired entry for ``deployment``."""
    deadline = time.monotonic() + budget(20)
    while (world.desired(device, deployment) is not None) != expected:
        assert time.monotonic() < deadline, f"{device} targeted by {deployment}: not {expected}"
        time.sleep(0.05)


def reported(world: World, device: str, labels: dict[str, str]) -> None:
    """Wait until the operator shows ``labels`` as reported in the Device's status."""
    deadline = time.monotonic() + budget(20)
    while ((world.get("devices", device) or {}).get("status") or {}).get("labels") != labels:
        assert time.monotonic() < deadline, f"{device}: reported labels never shown"
        time.sleep(0.05)


def counted(world: World, deployment: str) -> int:
    """How many devices ``deployment`` targets, once its status says."""
    deadline = time.monotonic() + budget(20)
    while "targeted" not in (aggregate := world.kube.aggregate(NAMESPACE, deployment)):
        assert time.monotonic() < deadline, f"{deployment}: no aggregate"
        time.sleep(0.05)
    return aggregate["targeted"]


def apply_both(world: World) -> None:
    for site in ("paris", "rome"):
        world.kube.create_deployment(
            NAMESPACE, f"web-{site}", selector={"matchLabels": {"site": site}}, score=SCORE
        )


def test_reported_labels_do_not_move_a_device_its_approved_ones_do(world: World) -> None:
    device, creds = enrolled(world, "lb-1", {"site": "paris"})
    device_resource = world.get("devices", "lb-1")
    assert device_resource is not None
    assert device_resource["spec"]["labels"] == {"site": "paris"}
    world.announce(device, creds, {"site": "rome"})  # a lie, or a local edit
    reported(world, "lb-1", {"site": "rome"})  # the operator has read it
    apply_both(world)
    targeted(world, "lb-1", "web-paris", True)
    # Activated after the device was read: its first count is its last.
    assert counted(world, "web-rome") == 0
    assert counted(world, "web-paris") == 1

    world.patch("devices", "lb-1", {"spec": {"labels": {"site": "rome"}}})  # a person
    targeted(world, "lb-1", "web-rome", True)
    targeted(world, "lb-1", "web-paris", False)

    # Restarted: the approved labels hold from the first targeting (never the reported).
    world.patch("devices", "lb-1", {"spec": {"labels": {"site": "paris"}}})
    targeted(world, "lb-1", "web-paris", True)
    targeted(world, "lb-1", "web-rome", False)
    rome_before = world.desired_revision("lb-1", "web-rome")  # its deletion
    world.stop_operators()
    world.start_operator()
    world.kube.create_deployment(  # written after the restart's first targeting
        NAMESPACE, "web-after", selector={"matchLabels": {"site": "paris"}}, score=SCORE
    )
    targeted(world, "lb-1", "web-after", True)
    assert world.desired_revision("lb-1", "web-rome") == rome_before, "rome was written again"


def test_invalid_approved_labels_target_nothing_until_fixed(world: World) -> None:
    device, creds = enrolled(world, "lb-2", {"site": "paris"})
    world.announce(device, creds, {"site": "paris"})
    apply_both(world)
    targeted(world, "lb-2", "web-paris", True)
    world.patch("devices", "lb-2", {"spec": {"labels": {"-bad key-": "x"}}})
    targeted(world, "lb-2", "web-paris", False)
    world.patch("devices", "lb-2", {"spec": {"labels": {"-bad key-": None, "site": "rome"}}})
    targeted(world, "lb-2", "web-rome", True)


# -- the rules, without a server ----------------------------------------------------------


def device_object(name: str, spec: bytes) -> KubeObject:
    return KubeObject(
        namespace=None, name=name, uid="u", generation=1, resource_version="1",
        creation_timestamp="", deletion_timestamp=None, finalizers=(), spec=spec,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "state", "reason"),
    [
        (b'{"deviceId": "d1", "labels": {"site": "x"}}', "approved", ""),
        (b'{"deviceId": "d1"}', "absent", ""),
        (b'{"deviceId": "d1", "labels": ["site"]}', "invalid", "must be an object"),
        (
            b'{"deviceId": "d1", "labels": {"site": "x y"}}',
            "invalid",
            "invalid value 'x y' for label 'site'",
        ),
        (b'{"labels": ' + b"[" * 5000 + b"]" * 5000 + b"}", "invalid", "spec unreadable"),
        (b"not json", "invalid", "spec unreadable"),
    ],
    ids=["approved", "absent", "not-an-object", "bad-value", "too-deep", "not-json"],
)
def test_a_device_resource_is_read_bounded_and_total(spec: bytes, state: str, reason: str) -> None:
    seen = approval(device_object("d1", spec))
    assert seen is not None
    assert seen.state == state
    assert reason in seen.reason


def test_the_rules_of_label_approvals() -> None:
    d = DeviceId("d1")
    off = LabelApprovals(enforced=False)
    assert off.report(d, {"site": "rome"}) == {"site": "rome"}
    on = LabelApprovals(enforced=True)
    assert on.report(d, {"site": "rome"}) == {"site": "rome"}  # nothing kept: reported
    ok = approval(device_object("d1", b'{"labels": {"site": "paris"}}'))
    assert ok is not None
    assert on.approve((ok,), listed=True) == [d]
    assert on.targeted_by(d) == {"site": "paris"}
    bad = approval(device_object("d1", b'{"labels": 5}'))
    assert bad is not None
    on.approve((bad,), listed=False)
    assert on.targeted_by(d) is None  # invalid: not targeted
    on.approve((), listed=True)  # its Device gone from the list
    assert on.targeted_by(d) == {"site": "rome"}
    assert on.report(d, None) is None  # forgotten: not targeted
