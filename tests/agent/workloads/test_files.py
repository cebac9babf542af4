"""Files on real podman: an inline and a sealed (Secret) file are readable inside the
container at their paths; a changed content replaces only the container that mounts it;
a value sealed to another device's key is Failed naming the field, and nothing runs."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fleet.runtime.nats.claims import new_seed, public_key
from fleet.runtime.sealing import seal
from tests.agent.conftest import AgentWorld, running

pytestmark = pytest.mark.podman


def files_score(image: str, *, site: str, secret: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "podman",
        "containers": [
            {
                "name": "app", "image": image, "command": ["sleep", "300"],
                "files": [
                    {"path": "/etc/app/site.conf", "content": f"site={site}\n"},
                    {"path": "/run/secrets/password", "sealed": secret},
                ],
            },
            {"name": "other", "image": image, "command": ["sleep", "300"]},
        ],
    }  # fmt: skip


def device_key(world: AgentWorld) -> str:
    """The device's key, as enrollment leaves it in its state dir."""
    seed = new_seed("user")
    state = world.state_root / world.device
    state.mkdir(parents=True, exist_ok=True)
    (state / "identity.seed").write_text(seed)
    (state / "identity.seed").chmod(0o600)
    return public_key(seed, "user")


def ids(world: AgentWorld) -> dict[str, str]:
    return {c["Names"][0].rsplit("-", 1)[1]: c["Id"] for c in world.owned("gw")}


@pytest.mark.timeout(150)
def test_inline_and_sealed_files_reach_the_container(world: AgentWorld) -> None:
    key = device_key(world)
    image = world.podman.image
    sealed = msgspec.to_builtins(seal(b"hunter2-secret", public_key=key))
    rev1 = world.put_desired("gw", files_score(image, site="a", secret=sealed))
    world.start_agent()
    world.wait_state("gw", lambda s: running(s, rev1), timeout=60)
    name = f"fleet-{world.device}-gw-app"
    cat = world.podman.podman("exec", name, "cat", "/etc/app/site.conf", "/run/secrets/password")
    assert cat.stdout == "site=a\nhunter2-secret"
    write = world.podman.podman(
        "exec", name, "sh", "-c", "echo x > /etc/app/site.conf", check=False
    )
    assert write.returncode != 0  # mounted read-only
    before = ids(world)

    resealed = msgspec.to_builtins(seal(b"hunter2-secret", public_key=key))
    rev2 = world.put_desired("gw", files_score(image, site="a", secret=resealed))
    world.wait_state("gw", lambda s: running(s, rev2), timeout=60)
    assert ids(world) == before  # the same content sealed again: nothing replaced

    rev3 = world.put_desired("gw", files_score(image, site="b", secret=resealed))
    world.wait_state("gw", lambda s: running(s, rev3), timeout=60)
    after = ids(world)
    assert after["other"] == before["other"]  # not mounting it: untouched
    assert after["app"] != before["app"]
    assert world.podman.podman("exec", name, "cat", "/etc/app/site.conf").stdout == "site=b\n"


@pytest.mark.timeout(120)
def test_a_value_sealed_to_another_device_fails_naming_the_field(world: AgentWorld) -> None:
    device_key(world)
    stranger = public_key(new_seed("user"), "user")
    sealed = msgspec.to_builtins(seal(b"x", public_key=stranger))
    world.start_agent()
    rev = world.put_desired("gw", files_score(world.podman.image, site="a", secret=sealed))
    state = world.wait_state(
        "gw", lambda s: s.phase.value == "Failed" and s.desired_revision == rev, timeout=60
    )
    assert "containers[0].files[1].sealed" in (state.message or "")
    assert "hunter" not in (state.message or "")
    assert world.owned("gw") == []  # nothing of it runs
