"""Issue 14's secrets end to end, every part the real program: an enrolled agent on real
podman runs a Deployment whose image is in a registry that needs a password
(``imagePullSecrets``: a ``kubernetes.io/dockerconfigjson`` Secret) and whose files come
inline (templated per device), from a ConfigMap and from a Secret. The files are
readable in the container; neither the Secret's bytes nor the registry password are
anywhere in the desired-state stream (every message read through the JetStream API)
or in nats-server's store on disk."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

import bcrypt
import kubernetes
import nats.js.errors
import pytest

from fleet.contracts import BUCKET_DESIRED_STATE
from fleet.runtime.nats.permissions import operator_permissions

from .conftest import NAMESPACE, IdentityWorld, wait_for

pytestmark = pytest.mark.timeout(150)

USER = "fleet"
FILE_SECRET = b"the-gateway-private-key-" + secrets.token_hex(8).encode()

DELIVER = {"fleet.nationtech.io/deliver": "true"}  # the Secrets opt in to delivery


def test_a_secret_file_and_a_private_image_reach_the_device_sealed(
    identity_world: IdentityWorld, tmp_path: Path
) -> None:
    world = identity_world
    device = "e2e-files-1"
    agent = world.start_agent(device, home="device")
    wait_for(lambda: world.enrollment_request(device).get("spec"), timeout=45,
             what="its EnrollmentRequest")  # fmt: skip
    world.fleetctl("enroll", "approve", device)
    wait_for(agent.creds.exists, timeout=20, what="device.creds written")

    # A registry that needs a password, holding the image.
    password = secrets.token_hex(12)
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_bytes(USER.encode() + b":" + bcrypt.hashpw(password.encode(), bcrypt.gensalt()))
    registry = world.podman.start_auth_registry(htpasswd)
    image = f"{registry}/private/busybox:{secrets.token_hex(3)}"
    world.podman.podman("tag", "localhost/busybox:test", image)
    world.podman.podman("push", "--creds", f"{USER}:{password}", image)
    world.podman.podman("rmi", image)

    core: Any = kubernetes.client.CoreV1Api(world.kube.api_client)  # bodies as dicts
    core.create_namespaced_config_map(
        NAMESPACE, {"metadata": {"name": "site"}, "data": {"site.conf": "mode=edge\n"}}
    )
    core.create_namespaced_secret(NAMESPACE, {
        "metadata": {"name": "tls", "labels": DELIVER}, "type": "Opaque",
        "data": {"key.pem": base64.b64encode(FILE_SECRET).decode()},
    })  # fmt: skip
    auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
    dockerconfig = json.dumps({"auths": {registry: {"auth": auth}}}).encode()
    core.create_namespaced_secret(NAMESPACE, {
        "metadata": {"name": "regcred", "labels": DELIVER},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(dockerconfig).decode()},
    })  # fmt: skip
    world.kube.create_deployment(NAMESPACE, "gw", selector={"matchLabels": {"site": "e2e"}},
        score={
            "type": "podman",
            "image_pull_secrets": [{"name": "regcred"}],
            "containers": [{
                "name": "main", "image": image,
                "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
                "files": [
                    {"path": "/etc/gw/id", "content": "{{ device.id }}"},
                    {"path": "/etc/gw/site.conf",
                     "config_map": {"name": "site", "key": "site.conf"}},
                    {"path": "/etc/gw/key.pem", "secret": {"name": "tls", "key": "key.pem"},
                     "mode": 0o400},
                ],
            }],
        },
    )  # fmt: skip
    wait_for(lambda: world.aggregate("gw").get("running") == 1, timeout=90, what="gw running")

    name = f"fleet-{device}-gw-main"
    shown = world.podman.podman(
        "exec", name, "cat", "/etc/gw/id", "/etc/gw/site.conf", "/etc/gw/key.pem"
    ).stdout
    assert shown == f"{device}mode=edge\n{FILE_SECRET.decode()}"

    # Nowhere in clear: the stream's every message, and the server's files.
    raw = stream_messages(world)
    assert f"{device}.gw".encode() in raw
    assert b"nacl-box-v1" in raw
    for secret in (FILE_SECRET, password.encode(), auth.encode()):
        assert secret not in raw
        assert base64.b64encode(secret) not in raw
    store = b"".join(p.read_bytes() for p in (world.root / "jetstream").rglob("*") if p.is_file())
    assert FILE_SECRET not in store
    assert password.encode() not in store
    assert password not in agent.log()
    assert FILE_SECRET.decode() not in agent.log()
    assert world.operator is not None
    assert password not in world.operator.log_path.read_text(errors="replace")
    world.podman.stop_auth_registry()


def stream_messages(world: IdentityWorld) -> bytes:
    """Every message of the desired-state stream, read one by one (JetStream API)."""

    async def read() -> bytes:
        client = await world._connect(  # the world's TLS and auth
            world.auth_dir / "operator.creds", inbox_prefix=operator_permissions().inbox_prefix
        )
        try:
            js = client.jetstream()
            stream = f"KV_{BUCKET_DESIRED_STATE}"
            info = await js.stream_info(stream)
            out = b""
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                try:
                    msg = await js.get_msg(stream, seq)
                except nats.js.errors.NotFoundError:
                    continue
                out += (msg.subject or "").encode() + b"\n" + (msg.data or b"") + b"\n"
            return out
        finally:
            await client.close()

    result: bytes = world.loop.run(read(), timeout=60)
    return result
