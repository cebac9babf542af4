"""Environment variables from a Secret (``secret_env``): each device gets the Secret's
value sealed to its own key, never in clear on the bus (every message of the
desired-state stream read through the JetStream API, and nats-server's store on disk); a
changed Secret reaches the devices; a missing Secret or key is listed naming the field;
a name in both ``env`` and ``secret_env`` is ``InvalidSpec`` naming the field.

The real operator against the API emulator and a real nats-server, simulated devices.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from fleet.actors.operator.app import Operator
from fleet.runtime.kube.file_objects import DELIVER_LABEL
from fleet.runtime.nats.claims import new_seed, public_key
from fleet.runtime.sealing import Opener
from tests.fixtures.kube import KubeCluster
from tests.fixtures.nats import NatsServer
from tests.scores import podman

from ..sim import Fleet, eventually
from .test_files import stream_bytes

SECRET = b"db-password-correct-horse"
ROTATED = b"db-password-battery-staple"
SEL = {"matchLabels": {"role": "edge"}}
LIVE = 600.0
SCORE = {
    "type": "podman",
    "containers": [{
        "name": "web", "image": "localhost/busybox:test",
        "env": {"SITE": "{{ device.id }}"},
        "secret_env": {"DB_PASSWORD": {"secret": {"name": "db", "key": "password"}}},
    }],
}  # fmt: skip

pytestmark = pytest.mark.timeout(120)


def core(kube: KubeCluster) -> Any:
    return kubernetes.client.CoreV1Api(kube.api_client)


def put_secret(kube: KubeCluster, value: bytes, *, key: str = "password") -> None:
    data = {key: base64.b64encode(value).decode()}
    body = {"metadata": {"name": "db", "labels": {DELIVER_LABEL: "true"}}, "type": "Opaque",
            "data": data}  # fmt: skip
    try:
        core(kube).create_namespaced_secret("ns", body)
    except kubernetes.client.ApiException:  # there: changed
        core(kube).patch_namespaced_secret("db", "ns", {"data": data})


def opened(fleet: Fleet, key: str, seed: str) -> bytes | None:
    entry = fleet.desired().get(key)
    if entry is None:
        return None
    source = (podman(entry.value).containers[0].secret_env or {})["DB_PASSWORD"]
    assert source.secret is None
    assert source.sealed is not None
    try:
        return Opener(seed).open(source.sealed)
    except Exception:  # sealed to an older key, or not yet: look again
        return None


def unrenderable(kube: KubeCluster) -> list[str]:
    return [u["reason"] for u in kube.status("ns", "web").get("unrenderable") or []]


def test_secret_env_reaches_each_device_sealed_to_its_own_key(
    kube: KubeCluster,
    fleet: Fleet,
    nats_server: NatsServer,
    start_operator: Callable[..., Operator],
) -> None:
    seeds = {d: new_seed("user") for d in ("d1", "d2")}
    fleet.join(list(seeds), {"role": "edge"})
    put_secret(kube, SECRET)
    operator = start_operator(liveness_timeout=LIVE, file_objects_interval=0.5)
    assert operator.files is not None
    operator.files.set_keys({d: public_key(s, "user") for d, s in seeds.items()}, listed=True)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)

    for device, seed in seeds.items():
        eventually(lambda d=device, s=seed: opened(fleet, f"{d}.web", s) == SECRET, timeout=30)  # type: ignore[misc]
        env = podman(fleet.desired()[f"{device}.web"].value).containers[0].env
        assert env == {"SITE": device}
    assert opened(fleet, "d2.web", seeds["d1"]) is None  # another device's key opens nothing

    put_secret(kube, ROTATED)  # a changed Secret reaches every device
    for device, seed in seeds.items():
        eventually(lambda d=device, s=seed: opened(fleet, f"{d}.web", s) == ROTATED, timeout=30)  # type: ignore[misc]

    raw = stream_bytes(fleet, nats_server)
    assert b"d1.web" in raw
    assert b"nacl-box-v1" in raw
    store = b"".join(p.read_bytes() for p in Path(nats_server.store_dir).rglob("*") if p.is_file())
    for value in (SECRET, ROTATED):
        for where in (raw, store):
            assert value not in where
            assert base64.b64encode(value) not in where


def test_a_missing_secret_or_key_is_listed_naming_the_field(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    seed = new_seed("user")
    fleet.join(["d1"], {"role": "edge"})
    operator = start_operator(liveness_timeout=LIVE, file_objects_interval=0.5)
    assert operator.files is not None
    operator.files.set_keys({"d1": public_key(seed, "user")})
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    where = "spec.score.containers[0].secret_env.DB_PASSWORD.secret"
    eventually(lambda: unrenderable(kube) == [f"{where}: Secret 'db' not found"], timeout=30)
    assert "d1.web" not in fleet.desired()

    put_secret(kube, SECRET, key="other")
    eventually(
        lambda: unrenderable(kube) == [f"{where}: Secret 'db' has no key 'password'"], timeout=30
    )
    assert "d1.web" not in fleet.desired()

    core(kube).patch_namespaced_secret(
        "db", "ns", {"data": {"password": base64.b64encode(SECRET).decode()}}
    )
    eventually(lambda: opened(fleet, "d1.web", seed) == SECRET, timeout=30)
    eventually(lambda: unrenderable(kube) == [], timeout=30)


def test_a_name_in_both_env_and_secret_env_is_invalid_spec(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1"], {"role": "edge"})
    start_operator(liveness_timeout=LIVE, file_objects_interval=0.5)
    both = {**SCORE, "containers": [{**SCORE["containers"][0],  # type: ignore[dict-item]
                                     "env": {"DB_PASSWORD": "clear"}}]}  # fmt: skip
    kube.create_deployment("ns", "web", selector=SEL, score=both)
    eventually(lambda: kube.ready("ns", "web").get("reason") == "InvalidSpec", timeout=30)
    message = kube.ready("ns", "web")["message"]
    assert message.startswith("spec.score: invalid score at `containers[0].secret_env.DB_PASSWORD`")
    assert "both env and secret_env" in message
    assert "d1.web" not in fleet.desired()
