"""Per-device values: a templated score reaches each device rendered with its own labels.

The real operator against the API emulator and a real nats-server, with simulated devices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from fleet.actors.operator.app import Operator
from fleet.contracts import Phase
from tests.fixtures.kube import KubeCluster
from tests.scores import podman

from ..sim import SCORE, Fleet, eventually

TEMPLATED = {
    "type": "podman",
    "containers": [{
        "name": "web",
        "image": "localhost/busybox:test",
        "command": ["httpd", "-f", "-h", "/www/{{ device.id }}"],
        "env": {"SITE": "{{ device.labels.site }}",
                "TIER": '{{ device.labels.tier | default("lab") | upper }}'},
    }],
}  # fmt: skip
SEL = {"matchLabels": {"role": "edge"}}
LIVE = 600.0  # the simulated devices beat once: they stay reachable on a loaded machine


def env_of(fleet: Fleet, key: str) -> dict[str, str] | None:
    entry = fleet.desired().get(key)
    if entry is None:
        return None
    return podman(entry.value).containers[0].env


def unrenderable(kube: KubeCluster) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = kube.status("ns", "web").get("unrenderable") or []
    return listed


def test_two_sites_get_their_own_values(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1"], {"role": "edge", "site": "paris", "tier": "gold"})
    fleet.join(["d2"], {"role": "edge", "site": "oslo"})
    start_operator(liveness_timeout=LIVE)
    kube.create_deployment("ns", "web", selector=SEL, score=TEMPLATED)

    eventually(lambda: env_of(fleet, "d1.web") == {"SITE": "paris", "TIER": "GOLD"}, timeout=30)
    eventually(lambda: env_of(fleet, "d2.web") == {"SITE": "oslo", "TIER": "LAB"}, timeout=30)
    command = podman(fleet.desired()["d2.web"].value).containers[0].command
    assert command == ["httpd", "-f", "-h", "/www/d2"]
    fleet.report(["d1", "d2"], "web", Phase.RUNNING)
    eventually(lambda: kube.ready("ns", "web").get("reason") == "AllRunning", timeout=30)
    assert unrenderable(kube) == []
    assert kube.aggregate("ns", "web")["running"] == 2

    # a relabel re-renders that device only
    before = fleet.desired()["d1.web"].revision
    fleet.info(["d2"], {"role": "edge", "site": "rome"})
    eventually(lambda: env_of(fleet, "d2.web") == {"SITE": "rome", "TIER": "LAB"}, timeout=30)
    assert fleet.desired()["d1.web"].revision == before
    eventually(lambda: kube.aggregate("ns", "web")["pending"] == 1, timeout=30)  # d2: new entry


def test_a_device_without_the_label_is_listed_and_the_others_converge(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1"], {"role": "edge", "site": "paris"})
    fleet.join(["d2"], {"role": "edge"})  # no site
    start_operator(liveness_timeout=LIVE)
    kube.create_deployment("ns", "web", selector=SEL, score=TEMPLATED)

    eventually(lambda: env_of(fleet, "d1.web") == {"SITE": "paris", "TIER": "LAB"}, timeout=30)
    fleet.report(["d1"], "web", Phase.RUNNING)
    reason = "spec.score.containers[0].env.SITE: device has no label 'site'"
    eventually(lambda: unrenderable(kube) == [{"device": "d2", "reason": reason}], timeout=30)
    eventually(
        lambda: (
            kube.aggregate("ns", "web")
            == {"targeted": 2, "running": 1, "pending": 1, "failed": 0, "unreachable": 0}
        ),
        timeout=30,
    )
    ready = kube.ready("ns", "web")
    assert (ready["status"], ready["reason"]) == ("False", "DevicesUnrenderable")
    assert "d2.web" not in fleet.desired()

    # the relabel fixes it: its entry is written, the list empties
    fleet.info(["d2"], {"role": "edge", "site": "oslo"})
    eventually(lambda: env_of(fleet, "d2.web") == {"SITE": "oslo", "TIER": "LAB"}, timeout=30)
    eventually(lambda: unrenderable(kube) == [], timeout=30)
    fleet.report(["d2"], "web", Phase.RUNNING)
    eventually(lambda: kube.ready("ns", "web").get("reason") == "AllRunning", timeout=30)

    # losing the label again: the entry is deleted, the device listed again
    fleet.info(["d1"], {"role": "edge"})
    eventually(lambda: "d1.web" not in fleet.desired(), timeout=30)
    eventually(lambda: [u["device"] for u in unrenderable(kube)] == ["d1"], timeout=30)
    assert env_of(fleet, "d2.web") == {"SITE": "oslo", "TIER": "LAB"}


def test_a_template_that_does_not_parse_is_invalid_spec_naming_the_field(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1"], {"role": "edge", "site": "paris"})
    start_operator(liveness_timeout=LIVE)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: "d1.web" in fleet.desired(), timeout=30)
    good = fleet.desired()["d1.web"]

    bad = {**TEMPLATED, "containers": [{**TEMPLATED["containers"][0],  # type: ignore[dict-item]
                                        "env": {"SITE": "{{ device.labels.site "}}]}  # fmt: skip
    kube.patch_deployment_spec("ns", "web", {"score": bad})
    eventually(lambda: kube.ready("ns", "web").get("reason") == "InvalidSpec", timeout=30)
    message = kube.ready("ns", "web")["message"]
    assert message.startswith("spec.score.containers[0].env.SITE: template does not parse"), message

    unknown = {**TEMPLATED, "containers": [{**TEMPLATED["containers"][0],  # type: ignore[dict-item]
                                            "env": {"SITE": "{{ device.site }}"}}]}  # fmt: skip
    kube.patch_deployment_spec("ns", "web", {"score": unknown})
    eventually(
        lambda: "unknown variable 'device.site'" in kube.ready("ns", "web")["message"], timeout=30
    )
    assert fleet.desired()["d1.web"].revision == good.revision  # nothing written for it


def test_a_templated_score_rolls_out_per_device(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    devices = [f"d{i}" for i in range(4)]
    for device in devices:
        fleet.join([device], {"role": "edge", "site": f"s{device}"})
    start_operator(liveness_timeout=LIVE)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: {f"{d}.web" for d in devices} <= set(fleet.desired()), timeout=30)
    fleet.report(devices, "web", Phase.RUNNING)
    eventually(lambda: kube.aggregate("ns", "web").get("running") == 4, timeout=30)

    rollout = {"batches": [{"size": 1}], "maxUnavailable": 1}
    kube.patch_deployment_spec("ns", "web", {"score": TEMPLATED, "rollout": rollout})

    def templated() -> set[str]:
        return {
            d for d in devices
            if (env_of(fleet, f"{d}.web") or {}).get("SITE") == f"s{d}"
        }  # fmt: skip

    eventually(lambda: len(templated()) == 1, timeout=30)
    first = templated()
    eventually(
        lambda: (kube.status("ns", "web")["rollout"]["revision"],
                 kube.status("ns", "web")["rollout"]["phase"]) == (2, "Progressing"),
        timeout=30,
    )  # fmt: skip
    assert templated() == first  # the first batch waits for its device to run it
    fleet.report(sorted(first), "web", Phase.RUNNING)

    def all_running() -> bool:
        given = templated()
        fleet.report(sorted(given), "web", Phase.RUNNING)  # as each device applies it
        return given == set(devices)

    eventually(all_running, timeout=60, interval=0.3)
    eventually(lambda: kube.status("ns", "web")["rollout"]["phase"] == "Complete", timeout=60)
    listing = cast(
        "dict[str, Any]",
        kube.custom.list_namespaced_custom_object(
            "fleet.nationtech.io", "v1alpha1", "ns", "deploymentrevisions"
        ),
    )
    revisions: list[dict[str, Any]] = listing["items"]
    # one revision for the template, not one per rendering
    assert len(revisions) == 2
    newest = max(revisions, key=lambda r: r["spec"]["revision"])
    assert newest["spec"]["score"]["containers"][0]["env"]["SITE"] == "{{ device.labels.site }}"
