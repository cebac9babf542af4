"""fleetctl enroll / token / device revoke: what a person sees and changes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from fleet.contracts import API_VERSION
from tests.fixtures.kube import GROUP, VERSION, KubeCluster

from .conftest import Result

pytestmark = pytest.mark.timeout(60)


def request(kube: KubeCluster, device: str, **spec: Any) -> None:
    kube.custom.create_cluster_custom_object(
        GROUP, VERSION, "enrollmentrequests",
        {"apiVersion": API_VERSION, "kind": "EnrollmentRequest", "metadata": {"name": device},
         "spec": {"deviceId": device, "publicKey": "U" + "A" * 55, "labels": {"site": "lab"},
                  "decision": "Pending", **spec}},
    )  # fmt: skip


def get(kube: KubeCluster, plural: str, name: str) -> dict[str, Any]:
    obj = kube.custom.get_cluster_custom_object(GROUP, VERSION, plural, name)
    assert isinstance(obj, dict)
    return obj


def test_enroll_list_approve_deny(ctl: Callable[..., Result], kube: KubeCluster) -> None:
    request(kube, "d1")
    request(kube, "d2")
    listed = ctl("enroll", "list")
    assert listed.code == 0
    assert listed.out.splitlines()[0].split()[:3] == ["DEVICE", "DECISION", "PHASE"]
    assert "site=lab" in listed.out
    assert ctl("enroll", "approve", "d1").code == 0
    assert ctl("enroll", "deny", "d2").code == 0
    assert get(kube, "enrollmentrequests", "d1")["spec"]["decision"] == "Approved"
    assert get(kube, "enrollmentrequests", "d2")["spec"]["decision"] == "Denied"
    rows = ctl("enroll", "list", "-o", "json").json()
    assert [(r["device"], r["decision"]) for r in rows] == [("d1", "Approved"), ("d2", "Denied")]


def test_a_token_approval_shows_no_decision_of_a_person(
    ctl: Callable[..., Result], kube: KubeCluster
) -> None:
    request(kube, "d3", decision="")
    kube.custom.patch_cluster_custom_object_status(
        GROUP, VERSION, "enrollmentrequests", "d3",
        {"status": {"phase": "Approved", "approvedBy": "token abc123"}},
    )  # fmt: skip
    request(kube, "d4", decision="")
    rows = {r["device"]: r for r in ctl("enroll", "list", "-o", "json").json()}
    assert (rows["d3"]["decision"], rows["d3"]["phase"]) == ("-", "Approved")
    assert (rows["d4"]["decision"], rows["d4"]["phase"]) == ("Pending", "Pending")


def test_approving_a_device_that_never_asked_fails(ctl: Callable[..., Result]) -> None:
    result = ctl("enroll", "approve", "ghost")
    assert result.code == 1
    assert "not found" in result.err


def test_token_create_prints_the_secret_once_and_stores_its_hash(
    ctl: Callable[..., Result], kube: KubeCluster
) -> None:
    result = ctl("token", "create", "--ttl", "2h", "--uses", "3", "--label", "site=lab")
    assert result.code == 0
    token = result.out.strip()
    ident, _, secret = token.partition(".")
    assert len(ident) == 6
    assert len(secret) == 32
    stored = get(kube, "bootstraptokens", ident)
    assert stored["spec"]["secretHash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert stored["spec"]["usesLeft"] == 3
    assert stored["spec"]["labels"] == {"site": "lab"}
    assert secret not in str(stored)
    listed = ctl("token", "list")
    assert ident in listed.out
    assert secret not in listed.out
    assert ctl("token", "list", "-o", "json").json()[0]["uses_left"] == 3


@pytest.mark.parametrize(
    "args",
    [["--ttl", "soon"], ["--uses", "0"], ["--label", "no-equals"], ["--label", "Bad Key=x"]],
)
def test_token_create_refuses_bad_options(ctl: Callable[..., Result], args: list[str]) -> None:
    result = ctl("token", "create", *args)
    assert result.code == 2, result


def test_device_revoke_marks_the_decision_and_deletes_the_device(
    ctl: Callable[..., Result], kube: KubeCluster
) -> None:
    request(kube, "d3", decision="Approved")
    kube.custom.create_cluster_custom_object(
        GROUP, VERSION, "devices",
        {"apiVersion": API_VERSION, "kind": "Device", "metadata": {"name": "d3"},
         "spec": {"deviceId": "d3", "publicKey": "U" + "A" * 55}},
    )  # fmt: skip
    result = ctl("device", "revoke", "d3")
    assert result.code == 0, result
    assert get(kube, "enrollmentrequests", "d3")["spec"]["decision"] == "Revoked"
    assert "d3" not in kube.devices()


def test_device_label_changes_the_approved_labels_and_only_those(
    ctl: Callable[..., Result], kube: KubeCluster
) -> None:
    kube.custom.create_cluster_custom_object(
        GROUP, VERSION, "devices",
        {"apiVersion": API_VERSION, "kind": "Device", "metadata": {"name": "d5"},
         "spec": {"deviceId": "d5", "publicKey": "U" + "A" * 55,
                  "labels": {"site": "paris", "tier": "edge"}}},
    )  # fmt: skip
    result = ctl("device", "label", "d5", "site=rome", "tier-", "zone=a")
    assert result.code == 0, result.err
    assert "site=rome" in result.out
    spec = get(kube, "devices", "d5")["spec"]
    assert spec["labels"] == {"site": "rome", "zone": "a"}
    assert spec["publicKey"] == "U" + "A" * 55  # nothing else touched

    bad = ctl("device", "label", "d5", "-bad key-=x")
    assert bad.code == 2
    assert "-bad key-" in bad.err
    assert get(kube, "devices", "d5")["spec"]["labels"] == {"site": "rome", "zone": "a"}

    missing = ctl("device", "label", "ghost", "site=x")
    assert missing.code == 1
    assert "not found" in missing.err
