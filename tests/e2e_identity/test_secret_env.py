"""An environment variable from a Secret end to end, every part the real program: an
enrolled agent on real podman runs a Deployment whose ``secret_env`` names a Secret key;
the container sees the value (``podman exec ... env``); the value is nowhere in the
desired-state stream (every message read through the JetStream API), in nats-server's
store on disk or in either log; a changed Secret replaces the container with the new
value."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import kubernetes
import pytest

from .conftest import NAMESPACE, IdentityWorld, wait_for
from .test_files_and_pull_secrets import DELIVER, stream_messages

pytestmark = pytest.mark.timeout(180)


def test_a_secret_env_variable_reaches_the_container_sealed(
    identity_world: IdentityWorld,
) -> None:
    world = identity_world
    device = "e2e-env-1"
    agent = world.start_agent(device, home="device")
    wait_for(lambda: world.enrollment_request(device).get("spec"), timeout=45,
             what="its EnrollmentRequest")  # fmt: skip
    world.fleetctl("enroll", "approve", device)
    wait_for(agent.creds.exists, timeout=20, what="device.creds written")

    value = "api-token-" + secrets.token_hex(8)
    core: Any = kubernetes.client.CoreV1Api(world.kube.api_client)  # bodies as dicts
    core.create_namespaced_secret(NAMESPACE, {
        "metadata": {"name": "api", "labels": DELIVER}, "type": "Opaque",
        "data": {"token": base64.b64encode(value.encode()).decode()},
    })  # fmt: skip
    world.kube.create_deployment(NAMESPACE, "gw", selector={"matchLabels": {"site": "e2e"}},
        score={
            "type": "podman",
            "containers": [{
                "name": "main", "image": world.podman.image,
                "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
                "env": {"SITE": "{{ device.id }}"},
                "secret_env": {"API_TOKEN": {"secret": {"name": "api", "key": "token"}}},
            }],
        },
    )  # fmt: skip
    wait_for(lambda: world.aggregate("gw").get("running") == 1, timeout=90, what="gw running")
    name = f"fleet-{device}-gw-main"
    shown = world.podman.podman("exec", name, "env").stdout
    assert f"API_TOKEN={value}\n" in shown
    assert f"SITE={device}\n" in shown

    rotated = "rotated-" + secrets.token_hex(8)
    core.patch_namespaced_secret(
        "api", NAMESPACE, {"data": {"token": base64.b64encode(rotated.encode()).decode()}}
    )
    wait_for(
        lambda: (
            f"API_TOKEN={rotated}\n" in world.podman.podman("exec", name, "env", check=False).stdout
        ),
        timeout=90,
        what="the container replaced with the new value",
    )

    raw = stream_messages(world)
    assert f"{device}.gw".encode() in raw
    assert b"nacl-box-v1" in raw
    store = b"".join(p.read_bytes() for p in (world.root / "jetstream").rglob("*") if p.is_file())
    for secret in (value.encode(), rotated.encode()):
        assert secret not in raw
        assert base64.b64encode(secret) not in raw
        assert secret not in store
        assert secret.decode() not in agent.log()
        assert world.operator is not None
        assert secret.decode() not in world.operator.log_path.read_text(errors="replace")
