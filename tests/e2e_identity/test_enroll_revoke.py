"""The real agent enrolls, is approved, reconciles a real container, is revoked, and keeps
its container running while it is locked out; a second device claiming its id with
another key is refused. Every part is the real program (see ``conftest.py``)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from fleet.runtime.nats import claims
from fleet.runtime.nats.device_key import jwt_subject, read_credentials

from .conftest import HEARTBEAT_S, LIVENESS_S, IdentityWorld, wait_for

pytestmark = pytest.mark.timeout(110)


def public_key_of(state_dir: Path) -> str:
    """The device's public key, from the seed its agent made (and never sent)."""
    seed_path = state_dir / "identity.seed"
    wait_for(seed_path.exists, timeout=30, what=f"{seed_path} made")
    return claims.public_key(seed_path.read_text().strip(), "user")


def test_enrolled_approved_reconciles_then_revoked_keeps_its_container(
    identity_world: IdentityWorld,
) -> None:
    world = identity_world
    device = "e2e-dev-1"

    # 1. It asks with nothing but the bootstrap credential; a person approves.
    agent = world.start_agent(device, home="device")
    key = public_key_of(agent.state_dir)
    request = wait_for(
        lambda: world.enrollment_request(device).get("spec", {}).get("publicKey") == key
        and world.enrollment_request(device),
        timeout=45, what="an EnrollmentRequest with the agent's key",
    )  # fmt: skip
    assert request["spec"]["deviceId"] == device
    assert request["spec"]["labels"] == {"site": "e2e"}
    assert request.get("status", {}).get("phase", "Pending") == "Pending"
    assert not agent.creds.exists()
    assert world.heartbeat_revision(device) is None  # the bootstrap credential only asks
    assert device in world.fleetctl("enroll", "list")

    world.fleetctl("enroll", "approve", device)
    wait_for(agent.creds.exists, timeout=20, what="device.creds written")
    assert stat.S_IMODE(agent.creds.stat().st_mode) == 0o600
    jwt, seed = read_credentials(agent.creds)
    assert claims.public_key(seed, "user") == key
    assert jwt_subject(jwt) == key  # the operator signed the agent's own key
    # Connected with its own credential: only that one may put its heartbeat.
    wait_for(lambda: world.heartbeat_revision(device), timeout=20, what="a heartbeat")
    assert world.enrollment_request(device)["status"]["phase"] == "Approved"

    # 2. A Deployment selecting it runs a real container, and the aggregate says so.
    world.apply("web", image=world.podman.image)
    wait_for(
        lambda: (agg := world.aggregate("web")).get("running") == 1
        and agg.get("targeted") == 1 and agg,
        timeout=60, what="web running 1/1",
    )  # fmt: skip
    name = f"fleet-{device}-web-main"
    running = world.container(name)
    assert running is not None
    container_id, status = running
    assert status == "running"

    # 3. Revoked: the server closes its connection, it cannot come back, its workload runs.
    world.fleetctl("device", "revoke", device)
    wait_for(
        lambda: world.enrollment_request(device).get("status", {}).get("phase") == "Revoked",
        timeout=20, what="the EnrollmentRequest Revoked",
    )  # fmt: skip
    wait_for(
        lambda: [line for line in agent.log().splitlines() if " ERROR " in line
                 and "closed the connection" in line and "authentication revoked" in line],
        timeout=20, what="the agent's ERROR: its connection closed by the server",
    )  # fmt: skip
    # It cannot come back: its credential is refused, and so is its key if it asks anew
    # (what it does once that credential has expired) or renews.
    assert world.connect_refused(agent.creds, device)
    reply = world.ask_to_enroll(device, seed=read_credentials(agent.creds)[1])
    assert reply.status == "refused", reply
    assert reply.jwt is None
    last_beat = world.heartbeat_revision(device)
    # The operator's view: no heartbeat for the liveness timeout (LIVENESS_S /
    # HEARTBEAT_S intervals), so the device counts as unreachable.
    assert LIVENESS_S / HEARTBEAT_S >= 6
    wait_for(
        lambda: world.aggregate("web").get("unreachable") == 1,
        timeout=30, what="web: the revoked device unreachable",
    )  # fmt: skip
    assert world.heartbeat_revision(device) == last_beat, "a revoked device still beats"
    assert agent.child.alive, agent.log()[-2000:]
    assert world.container(name) == (container_id, "running")

    # 4. Another key claiming the same id (a fresh state dir) is refused, and says why.
    # It shares this machine's podman: refused, it never reads a desired state, so it
    # never sweeps (and must not touch) the first device's container.
    thief = world.start_agent(device, home="thief")
    thief_key = public_key_of(thief.state_dir)
    assert thief_key != key

    def conflict() -> dict[str, str] | None:
        status = world.enrollment_request(device).get("status", {})
        for condition in status.get("conditions") or []:
            if condition.get("type") == "KeyConflict" and thief_key in condition["message"]:
                return dict(condition)
        return None

    condition = wait_for(conflict, timeout=30, what="a KeyConflict condition")
    assert condition["status"] == "True"
    wait_for(lambda: "enrolled with another key" in thief.log(), timeout=20,
             what="the second agent told it is refused")  # fmt: skip
    assert not thief.creds.exists()
    assert world.enrollment_request(device)["spec"]["publicKey"] == key  # never replaced
    assert world.container(name) == (container_id, "running")


def test_a_bootstrap_token_approves_without_a_person(identity_world: IdentityWorld) -> None:
    world = identity_world
    device = "e2e-dev-2"
    token = world.fleetctl("token", "create", "--uses", "1", "--label", "site=e2e").strip()
    agent = world.start_agent(device, home="device", token=token)
    wait_for(agent.creds.exists, timeout=45, what="device.creds written")
    wait_for(lambda: world.heartbeat_revision(device), timeout=20, what="a heartbeat")
    status = world.enrollment_request(device)["status"]
    assert status["phase"] == "Approved"
    assert status["approvedBy"] == f"token {token.partition('.')[0]}"
    assert token not in agent.log()  # the secret is never logged
