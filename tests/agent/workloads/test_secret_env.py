"""Environment variables from a Secret on real podman: a sealed value reaches the
container as an env variable (through a podman secret, never in the create body); the
same value sealed again replaces nothing; a changed value replaces only the container
that uses it and leaves no stale podman secret; deleting the deployment removes its
secrets; an unresolved ``secret`` reference, a value sealed to another key and a name in
both ``env`` and ``secret_env``, written by hand into the bucket, are Failed naming the
field, and nothing of them runs."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from fleet.runtime.nats.claims import new_seed, public_key
from fleet.runtime.podman.adapter import PodmanRuntime
from fleet.runtime.sealing import seal
from tests.agent.conftest import AgentWorld, running, wait_for
from tests.agent.process.harness import AgentProcess

pytestmark = pytest.mark.podman

SECRET_LABEL = "fleet.nationtech.io/device"


def env_score(image: str, *, sealed: dict[str, Any], plain: str = "p") -> dict[str, Any]:
    # `trap`: stops at once on SIGTERM (busybox sleep as PID 1 ignores it)
    return {
        "type": "podman",
        "containers": [
            {
                "name": "app", "image": image,
                "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"],
                "env": {"PLAIN": plain},
                "secret_env": {"DB_PASSWORD": {"sealed": sealed}},
            },
            {"name": "other", "image": image, "command": ["sleep", "300"]},
        ],
    }  # fmt: skip


def device_key(state_dir: Path) -> str:
    """The device's key, as enrollment leaves it in its state dir."""
    seed = new_seed("user")
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "identity.seed").write_text(seed)
    (state_dir / "identity.seed").chmod(0o600)
    return public_key(seed, "user")


def sealed_to(key: str, value: bytes) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(seal(value, public_key=key))
    return result


def ids(world: AgentWorld, deployment: str = "gw") -> dict[str, str]:
    return {c["Names"][0].rsplit("-", 1)[1]: c["Id"] for c in world.owned(deployment)}


def podman_secrets(world: AgentWorld) -> dict[str, dict[str, str]]:
    """This device's podman secrets (name -> labels), read one by one (podman 4's list
    leaves labels out)."""
    listed = world.podman.podman("secret", "ls", "--format", "{{.Name}}").stdout
    names = [line.strip() for line in listed.splitlines() if line.strip()]
    out: dict[str, dict[str, str]] = {}
    for name in names:
        if not name.startswith(f"fleet-{world.device}."):
            continue
        inspected = world.podman.podman("secret", "inspect", name, check=False)
        if inspected.returncode != 0:
            continue  # removed between the listing and this (the agent sweeping meanwhile)
        out[name] = dict(msgspec.json.decode(inspected.stdout)[0]["Spec"].get("Labels") or {})
    return out


def env_of(world: AgentWorld, container: str) -> str:
    name = f"fleet-{world.device}-gw-{container}"
    return world.podman.podman("exec", name, "env").stdout


@pytest.fixture(autouse=True)
def _remove_secrets(world: AgentWorld) -> Iterator[None]:
    yield
    for name in podman_secrets(world):
        world.podman.podman("secret", "rm", name, check=False)


@pytest.mark.timeout(180)
def test_a_sealed_value_reaches_the_container_as_env(
    world: AgentWorld, caplog: pytest.LogCaptureFixture
) -> None:
    key = device_key(world.state_root / world.device)
    value = b"s3cret-" + secrets.token_hex(8).encode()
    image = world.podman.image
    rev1 = world.put_desired("gw", env_score(image, sealed=sealed_to(key, value)))
    world.start_agent()
    world.wait_state("gw", lambda s: running(s, rev1), timeout=60)
    shown = env_of(world, "app")
    assert f"DB_PASSWORD={value.decode()}\n" in shown
    assert "PLAIN=p\n" in shown
    assert "DB_PASSWORD" not in env_of(world, "other")
    held = podman_secrets(world)
    assert len(held) == 1
    assert next(iter(held.values()))[SECRET_LABEL] == world.device
    before = ids(world)

    # the same value sealed again (new ciphertext): nothing replaced
    rev2 = world.put_desired("gw", env_score(image, sealed=sealed_to(key, value)))
    world.wait_state("gw", lambda s: running(s, rev2), timeout=60)
    assert ids(world) == before
    assert podman_secrets(world) == held

    # a new value: only the container that uses it is replaced, the old secret goes
    changed = b"rotated-" + secrets.token_hex(8).encode()
    rev3 = world.put_desired("gw", env_score(image, sealed=sealed_to(key, changed)))
    world.wait_state("gw", lambda s: running(s, rev3), timeout=60)
    after = ids(world)
    assert after["other"] == before["other"]
    assert after["app"] != before["app"]
    assert f"DB_PASSWORD={changed.decode()}\n" in env_of(world, "app")
    wait_for(lambda: len(podman_secrets(world)) == 1 and podman_secrets(world) != held,
             timeout=30, what="the old secret removed")  # fmt: skip

    world.delete_desired("gw")
    wait_for(lambda: world.owned("gw") == [], timeout=60, what="the containers removed")
    wait_for(lambda: podman_secrets(world) == {}, timeout=30, what="the secrets removed")
    assert value.decode() not in caplog.text
    assert changed.decode() not in caplog.text


@pytest.mark.timeout(150)
def test_what_cannot_be_given_is_failed_naming_the_field(
    world: AgentWorld, caplog: pytest.LogCaptureFixture
) -> None:
    key = device_key(world.state_root / world.device)
    image = world.podman.image
    world.start_agent()

    unresolved = env_score(image, sealed={})
    unresolved["containers"][0]["secret_env"] = {"TOKEN": {"secret": {"name": "s", "key": "k"}}}
    rev = world.put_desired("refs", unresolved)
    state = world.wait_state(
        "refs", lambda s: s.phase.value == "Failed" and s.desired_revision == rev, timeout=60
    )
    assert "containers[0].secret_env.TOKEN.secret" in (state.message or "")

    stranger = public_key(new_seed("user"), "user")
    rev = world.put_desired("other-key", env_score(image, sealed=sealed_to(stranger, b"hunter2")))
    state = world.wait_state(
        "other-key", lambda s: s.phase.value == "Failed" and s.desired_revision == rev, timeout=60
    )
    assert "containers[0].secret_env.DB_PASSWORD.sealed" in (state.message or "")
    assert "does not open" in (state.message or "")

    both = env_score(image, sealed=sealed_to(key, b"hunter2"))
    both["containers"][0]["env"] = {"DB_PASSWORD": "clear"}
    rev = world.put_desired("both", both)
    state = world.wait_state(
        "both", lambda s: s.phase.value == "Failed" and s.desired_revision == rev, timeout=60
    )
    assert "containers[0].secret_env.DB_PASSWORD" in (state.message or "")
    assert "both env and secret_env" in (state.message or "")

    for deployment in ("refs", "other-key", "both"):
        assert world.owned(deployment) == []  # nothing of them runs
    assert podman_secrets(world) == {}
    assert "hunter2" not in caplog.text


@pytest.mark.timeout(180)
def test_sigkill_mid_replace_leaves_no_stale_secret(
    world: AgentWorld, agents: list[AgentProcess], tmp_path: Path
) -> None:
    agent = AgentProcess(world, tmp_path)
    agents.append(agent)
    key = device_key(agent.state_dir)
    image = world.podman.image

    def score(value: bytes) -> dict[str, Any]:
        # busybox sleep as PID 1 ignores SIGTERM: the old container takes the whole stop
        # timeout to stop, the window in which the agent is killed
        container = {"name": "app", "image": image, "command": ["sleep", "300"],
                     "secret_env": {"TOKEN": {"sealed": sealed_to(key, value)}}}  # fmt: skip
        return {"type": "podman", "containers": [container]}

    one, two = (f"{n}-{secrets.token_hex(6)}".encode() for n in ("one", "two"))
    first = world.put_desired("gw", score(one))
    agent.start()
    world.wait_state("gw", lambda s: running(s, first), timeout=60)
    held = podman_secrets(world)
    assert len(held) == 1

    second = world.put_desired("gw", score(two))
    name = f"fleet-{world.device}-gw-app"

    def mid_replace() -> bool:
        seen = {c["Names"][0]: c["State"] for c in world.owned("gw")}
        return f"{name}.next" in seen and seen.get(name) != "running"

    wait_for(mid_replace, timeout=60, what="the replacement made, the old one stopping")
    agent.kill()
    assert len(podman_secrets(world)) == 2  # the old one's and the new one's, both in use

    restarted = AgentProcess(world, tmp_path)
    agents.append(restarted)
    restarted.start()
    world.wait_state("gw", lambda s: running(s, second), timeout=60)
    assert [c["Names"][0] for c in world.owned("gw")] == [name]  # no duplicate, no .next
    assert f"TOKEN={two.decode()}\n" in env_of(world, "app")
    wait_for(lambda: len(podman_secrets(world)) == 1 and podman_secrets(world) != held,
             timeout=30, what="only the new secret left")  # fmt: skip
    assert two.decode() not in restarted.log() + agent.log()
    assert restarted.stop() == 0


@pytest.mark.timeout(120)
def test_secrets_a_crash_left_of_a_deleted_deployment_are_swept(world: AgentWorld) -> None:
    # What an agent killed mid-deletion leaves: its containers gone, a secret not yet.
    device_key(world.state_root / world.device)
    runtime = PodmanRuntime(url=world.podman.socket_url)
    owner = {"fleet.nationtech.io/managed-by": "fleet-agent", SECRET_LABEL: world.device}
    left = f"fleet-{world.device}.gone.app.0-0123456789abcdef"
    labels = {**owner, "fleet.nationtech.io/deployment": "gone",
              "fleet.nationtech.io/container": "app"}  # fmt: skip
    runtime.ensure_secret(left, data=b"x", labels=labels)
    # one without the owner labels (made by hand) under the same prefix is never touched
    stranger = f"fleet-{world.device}.gone.app.1-0123456789abcdef"
    runtime.ensure_secret(stranger, data=b"y", labels={"team": "x"})
    runtime.close()
    world.start_agent()
    wait_for(lambda: list(podman_secrets(world)) == [stranger], timeout=60,
             what="the orphan secret swept")  # fmt: skip
