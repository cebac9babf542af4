"""A device gets no entry of a type its device-info does not list: it is listed instead.

The real operator against the API emulator and a real nats-server, with simulated devices
whose infos list their runtimes (or, as an older agent, none: podman only). Every write
to desired-state is recorded (the tap), so "never written" is what the bucket saw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest

from fleet.actors.operator.app import Operator
from fleet.contracts import BUCKET_DEVICE_INFO, DeviceId, Phase, decode_score, device_info_key
from tests.fixtures.kube import KubeCluster

from ..rollouts.tap import DesiredTap
from ..sim import Fleet, eventually
from .scores import BY_TYPE, KVM, PODMAN

SEL = {"matchLabels": {"role": "edge"}}
EDGE = {"role": "edge"}
LIVE = 600.0  # the simulated devices beat once: they stay reachable on a loaded machine
WAIT = 60.0


@pytest.fixture
def tap(fleet: Fleet) -> Iterator[DesiredTap]:
    tap = DesiredTap(fleet.bus, fleet.loop).start()
    yield tap
    tap.stop()


def unrunnable(kube: KubeCluster, name: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = kube.status("ns", name).get("unrunnable") or []
    return listed


def listed(kube: KubeCluster, name: str) -> list[str]:
    return [u["device"] for u in unrunnable(kube, name)]


def kinds(fleet: Fleet, name: str) -> dict[str, str]:
    """Device -> the type of its entry of ``name``, as the raw bucket holds it now."""
    return {
        key.partition(".")[0]: decode_score(entry.value).__struct_config__.tag  # type: ignore[misc]
        for key, entry in fleet.desired().items()
        if key.endswith(f".{name}")
    }


def test_a_podman_only_device_never_receives_a_kvm_entry(
    kube: KubeCluster, fleet: Fleet, tap: DesiredTap, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["old"], EDGE)  # an agent older than the field: podman only
    fleet.join(["pod"], EDGE, runtimes=["podman"])
    fleet.join(["vm"], EDGE, runtimes=["podman", "kvm"])
    start_operator(liveness_timeout=LIVE)
    kube.create_deployment("ns", "app", selector=SEL, score=KVM)

    eventually(lambda: kinds(fleet, "app") == {"vm": "kvm"}, timeout=WAIT)
    eventually(lambda: listed(kube, "app") == ["old", "pod"], timeout=WAIT)
    assert unrunnable(kube, "app")[1] == {
        "device": "pod", "reason": "its device-info lists no 'kvm' runtime (it runs: podman)"
    }  # fmt: skip
    fleet.report(["vm"], "app", Phase.RUNNING)
    eventually(
        lambda: (
            kube.aggregate("ns", "app")
            == {"targeted": 3, "running": 1, "pending": 2, "failed": 0, "unreachable": 0}
        ),
        timeout=WAIT,
    )
    ready = kube.ready("ns", "app")
    assert (ready["status"], ready["reason"]) == ("False", "DevicesUnrunnable")
    assert ready["message"].startswith("2 devices cannot run the score's type"), ready
    assert {w.device for w in tap.writes("app")} == {"vm"}

    # gaining the runtime: its entry is written, it leaves the list
    fleet.info(["pod"], EDGE, runtimes=["podman", "kvm"])
    eventually(lambda: kinds(fleet, "app") == {"vm": "kvm", "pod": "kvm"}, timeout=WAIT)
    eventually(lambda: listed(kube, "app") == ["old"], timeout=WAIT)

    # losing it: its entry is deleted, it is listed again
    fleet.info(["vm"], EDGE, runtimes=["podman"])
    eventually(lambda: kinds(fleet, "app") == {"pod": "kvm"}, timeout=WAIT)
    eventually(lambda: listed(kube, "app") == ["old", "vm"], timeout=WAIT)
    eventually(lambda: kube.aggregate("ns", "app")["pending"] == 3, timeout=WAIT)

    # a podman score for the same targets: every one runs it, nobody is listed
    replaced = {**dict.fromkeys(KVM), **PODMAN}  # a merge patch: the kvm fields go (null)
    kube.patch_deployment_spec("ns", "app", {"score": replaced})
    eventually(
        lambda: kinds(fleet, "app") == {"old": "podman", "pod": "podman", "vm": "podman"},
        timeout=WAIT,
    )
    eventually(lambda: listed(kube, "app") == [], timeout=WAIT)
    assert "old" not in {w.device for w in tap.writes("app") if w.value and b'"kvm"' in w.value}


def test_a_mixed_fleet_with_a_deployment_per_type_converges(
    kube: KubeCluster, fleet: Fleet, tap: DesiredTap, start_operator: Callable[..., Operator]
) -> None:
    fleet_of = {kind: [f"{kind[:3]}-{i}" for i in range(4)] for kind in BY_TYPE}
    for kind, devices in fleet_of.items():
        fleet.join(devices, EDGE, runtimes=[kind])
    start_operator(liveness_timeout=LIVE)
    for kind, score in BY_TYPE.items():
        kube.create_deployment("ns", f"on-{kind}", selector=SEL, score=score)

    for kind, devices in fleet_of.items():
        name = f"on-{kind}"
        eventually(lambda: kinds(fleet, name) == dict.fromkeys(devices, kind), timeout=WAIT)  # noqa: B023
        fleet.report(devices, name, Phase.RUNNING)
    for kind, devices in fleet_of.items():
        name = f"on-{kind}"
        others = sorted(d for k, ds in fleet_of.items() if k != kind for d in ds)
        eventually(
            lambda: (
                kube.aggregate("ns", name)  # noqa: B023
                == {"targeted": 12, "running": 4, "pending": 8, "failed": 0, "unreachable": 0}
            ),
            timeout=WAIT,
        )
        eventually(lambda: listed(kube, name) == others, timeout=WAIT)  # noqa: B023
        assert kube.ready("ns", name)["message"].startswith("8 devices cannot run")
        written = {w.device for w in tap.writes(name)}
        assert written == set(devices), f"{name} written to {written - set(devices)}"

    # a device that learns a second runtime gets that Deployment's entry too
    fleet.info(["pod-0"], EDGE, runtimes=["podman", "kubernetes"])
    eventually(lambda: kinds(fleet, "on-kubernetes").get("pod-0") == "kubernetes", timeout=WAIT)
    assert kinds(fleet, "on-podman").get("pod-0") == "podman"
    eventually(lambda: "pod-0" not in listed(kube, "on-kubernetes"), timeout=WAIT)


def test_garbage_runtimes_are_refused_and_the_last_valid_info_kept(
    kube: KubeCluster, fleet: Fleet, tap: DesiredTap, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1"], EDGE, runtimes=["podman", "kvm"])
    fleet.join(["d2"], EDGE, runtimes=["podman", "kvm"])
    fleet.join(["d3"], EDGE, runtimes=["podman"])
    start_operator(liveness_timeout=LIVE)
    kube.create_deployment("ns", "app", selector=SEL, score=KVM)
    eventually(lambda: kinds(fleet, "app") == {"d1": "kvm", "d2": "kvm"}, timeout=WAIT)
    eventually(lambda: listed(kube, "app") == ["d3"], timeout=WAIT)
    revisions = {k: e.revision for k, e in fleet.desired().items()}

    key = device_info_key(DeviceId("d1"))
    valid = msgspec.json.decode(fleet.run(fleet.bus.get(BUCKET_DEVICE_INFO, key)).value)
    for garbage in (
        ["KVM!"],  # not a runtime name
        ["kvm", "kvm"],  # twice
        "kvm",  # not a list
        ["x" * 64],  # too long for a name
        [f"r{i}" for i in range(17)],  # too many
        [7],
    ):
        fleet.put_raw(BUCKET_DEVICE_INFO, key, msgspec.json.encode({**valid, "runtimes": garbage}))
    fleet.put_raw(BUCKET_DEVICE_INFO, key, b'{"device_id": "d1", "runtimes": ')  # torn
    fleet.put_raw(BUCKET_DEVICE_INFO, key, b"\xff" * 64)

    # the operator is alive (it acts on a neighbour's valid change) and kept d1 as it was
    fleet.info(["d3"], EDGE, runtimes=["podman", "kvm"])
    eventually(lambda: kinds(fleet, "app").get("d3") == "kvm", timeout=WAIT)
    eventually(lambda: listed(kube, "app") == [], timeout=WAIT)
    now = {k: e.revision for k, e in fleet.desired().items()}
    assert now["d1.app"] == revisions["d1.app"]
    assert now["d2.app"] == revisions["d2.app"]
    assert {w.device for w in tap.writes("app")} == {"d1", "d2", "d3"}
    assert [w.device for w in tap.writes("app") if w.value is None] == []

    # and a valid info for d1 again is read as usual
    fleet.info(["d1"], EDGE, runtimes=["podman"])
    eventually(lambda: "d1" not in kinds(fleet, "app"), timeout=WAIT)
    eventually(lambda: listed(kube, "app") == ["d1"], timeout=WAIT)
