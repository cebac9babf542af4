"""Registry credentials on real podman, against a real registry that needs a password
(docker-registry with htpasswd): the sealed credential pulls the image, for that pull
only (no auth.json, nothing in clear on disk); without it the pull is refused; one
sealed to another device's key is Failed naming the field, and nothing runs."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import msgspec
import pytest

from fleet.runtime.nats.claims import new_seed, public_key
from fleet.runtime.sealing import seal
from tests.agent.conftest import AgentWorld, running
from tests.fixtures.podman import PodmanEnv

pytestmark = pytest.mark.podman

USER = "fleet"


@pytest.fixture
def private(podman: PodmanEnv, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The busybox image in a registry that needs ``USER`` and a password: (ref, password)."""
    password = secrets.token_hex(12)
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_bytes(USER.encode() + b":" + bcrypt.hashpw(password.encode(), bcrypt.gensalt()))
    registry = podman.start_auth_registry(htpasswd)
    ref = f"{registry}/private/busybox:{secrets.token_hex(3)}"
    podman.podman("tag", "localhost/busybox:test", ref)
    podman.podman("push", "--creds", f"{USER}:{password}", ref)
    podman.podman("rmi", ref)
    try:
        yield ref, password
    finally:
        podman.remove_image(ref)
        podman.stop_auth_registry()


def score(ref: str, auth: dict[str, Any] | None) -> dict[str, Any]:
    value: dict[str, Any] = {
        "type": "podman",
        "containers": [{"name": "app", "image": ref, "command": ["sleep", "300"]}],
    }
    if auth is not None:
        value["registry_auth"] = [auth]
    return value


def device_key(world: AgentWorld) -> str:
    seed = new_seed("user")
    state = world.state_root / world.device
    state.mkdir(parents=True, exist_ok=True)
    (state / "identity.seed").write_text(seed)
    return public_key(seed, "user")


def sealed_auth(registry: str, password: str, key: str) -> dict[str, Any]:
    credential = msgspec.json.encode({"username": USER, "password": password})
    return {"registry": registry, "sealed": msgspec.to_builtins(seal(credential, public_key=key))}


@pytest.mark.timeout(150)
def test_a_sealed_credential_pulls_from_a_registry_that_needs_a_password(
    world: AgentWorld, private: tuple[str, str]
) -> None:
    ref, password = private
    registry = ref.split("/", 1)[0]
    key = device_key(world)
    world.start_agent()

    refused = world.put_desired("cam", score(ref, None))

    def denied(s: Any) -> bool:
        message = (s.message or "").lower()
        return bool(s.desired_revision == refused and "unauthorized" in message)

    world.wait_state("cam", denied, timeout=60)  # no credential: the registry says no
    assert world.owned("cam") == []

    rev = world.put_desired("cam", score(ref, sealed_auth(registry, password, key)))
    world.wait_state("cam", lambda s: running(s, rev), timeout=90)
    assert [c["Image"] for c in world.owned("cam")] == [ref]
    # used for that pull only: podman stored it nowhere, the agent kept it sealed
    for root in (world.podman.root, world.state_root):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 50_000_000:
                with path.open("rb") as handle:
                    assert password.encode() not in handle.read(), path
    assert not list(world.podman.root.rglob("auth.json"))


@pytest.mark.timeout(120)
def test_a_credential_sealed_to_another_device_fails_naming_the_field(
    world: AgentWorld, private: tuple[str, str]
) -> None:
    ref, password = private
    device_key(world)
    stranger = public_key(new_seed("user"), "user")
    world.start_agent()
    rev = world.put_desired(
        "cam", score(ref, sealed_auth(ref.split("/", 1)[0], password, stranger))
    )
    state = world.wait_state(
        "cam", lambda s: s.phase.value == "Failed" and s.desired_revision == rev, timeout=60
    )
    assert "registry_auth[0].sealed" in (state.message or "")
    assert world.owned("cam") == []


@pytest.mark.timeout(120)
def test_an_entry_naming_secrets_written_by_hand_is_refused(world: AgentWorld) -> None:
    world.start_agent()
    value = score(world.podman.image, None)
    value["image_pull_secrets"] = [{"name": "regcred"}]
    rev = world.put_desired("cam", value)
    state = world.wait_state(
        "cam", lambda s: s.phase.value == "Failed" and s.desired_revision == rev, timeout=60
    )
    assert "`image_pull_secrets`" in (state.message or "")
    assert world.owned("cam") == []
