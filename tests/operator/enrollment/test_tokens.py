"""Bootstrap tokens approve devices by themselves, within their policy, never overspent."""

from __future__ import annotations

import concurrent.futures
import datetime
import hashlib

import pytest

from fleet.cli.fleetctl import enrolling
from fleet.contracts import API_VERSION
from fleet.runtime.kube.client import KubeClient

from .world import SimDevice, World

pytestmark = pytest.mark.timeout(90)


def make_token(world: World, *, uses: int = 1, labels: dict[str, str] | None = None,
               ttl: float = 3600) -> str:  # fmt: skip
    token, _ = enrolling.create_token(
        KubeClient(world.kube.api_client), ttl=ttl, uses=uses, labels=labels or {}
    )
    return token


def test_a_valid_token_approves_at_once_and_spends_one_use(world: World) -> None:
    token = make_token(world, uses=2, labels={"site": "paris"})
    reply = world.enroll(SimDevice("t-1"), token=token, labels={"site": "paris"})
    assert reply.status == "approved", reply
    ident = token.split(".")[0]
    status = world.request("t-1")["status"]
    assert (status["phase"], status["approvedBy"]) == ("Approved", f"token {ident}")
    stored = world.get("bootstraptokens", ident)
    assert stored is not None
    assert stored["spec"]["usesLeft"] == 1
    assert stored["status"]["usedBy"] == ["t-1"]
    assert token.split(".")[1] not in str(stored)  # only the hash is kept


def _expired(world: World) -> str:
    secret = "s" * 32
    world.kube.custom.create_cluster_custom_object(
        "fleet.nationtech.io", "v1alpha1", "bootstraptokens",
        {"apiVersion": API_VERSION, "kind": "BootstrapToken", "metadata": {"name": "old001"},
         "spec": {"expires": "2020-01-01T00:00:00Z", "usesLeft": 5, "labels": {},
                  "secretHash": hashlib.sha256(secret.encode()).hexdigest()}},
    )  # fmt: skip
    return f"old001.{secret}"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "expired"),
        ("used-up", "used up"),
        ("wrong-secret", "wrong secret"),
        ("label", "does not grant label site=rome"),
        ("unknown", "does not exist"),
    ],
)
def test_a_token_outside_its_policy_is_refused_and_nothing_is_stored(
    world: World, case: str, reason: str
) -> None:
    labels: dict[str, str] = {}
    if case == "expired":
        token = _expired(world)
    elif case == "used-up":
        token = make_token(world, uses=1)
        assert world.enroll(SimDevice("first"), token=token).status == "approved"
    elif case == "wrong-secret":
        token = make_token(world).split(".")[0] + "." + "x" * 32
    elif case == "label":
        token, labels = make_token(world, labels={"site": "paris"}), {"site": "rome"}
    else:
        token = "nope00." + "y" * 32
    before = {t["metadata"]["name"]: t["spec"] for t in world.listed("bootstraptokens")}
    reply = world.enroll(SimDevice("t-2"), token=token, labels=labels)
    assert reply.status == "refused"
    assert reason in (reply.reason or ""), reply
    assert world.get("enrollmentrequests", "t-2") is None
    assert {t["metadata"]["name"]: t["spec"] for t in world.listed("bootstraptokens")} == before


def test_concurrent_uses_never_overspend_a_token(world: World) -> None:
    token = make_token(world, uses=3)
    devices = [SimDevice(f"c-{i}") for i in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda d: world.enroll(d, token=token), devices))
    statuses = sorted(r.status for r in replies)
    assert statuses.count("approved") == 3, replies
    assert statuses.count("refused") == 5
    stored = world.get("bootstraptokens", token.split(".")[0])
    assert stored is not None
    assert stored["spec"]["usesLeft"] == 0
    assert len(stored["status"]["usedBy"]) == 3
    assert datetime.datetime.now(tz=datetime.UTC)  # the clock: no sleeps above
