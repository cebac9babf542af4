"""Files from ConfigMaps and Secrets: each device gets the ConfigMap's content and the
Secret's sealed to its own key; the Secret's bytes are nowhere on the bus (every message
of the desired-state stream read through the JetStream API, and nats-server's store on
disk); a device without a known key, a missing object or key is listed with the reason;
a changed ConfigMap reaches the devices; a Secret that did not opt in (the label
``fleet.nationtech.io/deliver: "true"``), or a service account token, is never delivered.

The real operator against the API emulator and a real nats-server, simulated devices.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import nats
import pytest

from fleet.actors.operator.app import Operator
from fleet.contracts import BUCKET_DESIRED_STATE
from fleet.runtime.kube.file_objects import DELIVER_LABEL
from fleet.runtime.nats.claims import new_seed, public_key
from fleet.runtime.sealing import Opener
from tests.fixtures.kube import KubeCluster
from tests.fixtures.nats import NatsServer
from tests.scores import podman

from ..sim import Fleet, eventually

SECRET = b"correct-horse-battery-staple"
SEL = {"matchLabels": {"role": "edge"}}
LIVE = 600.0
SCORE = {
    "type": "podman",
    "containers": [{
        "name": "web", "image": "localhost/busybox:test",
        "files": [
            {"path": "/etc/inline", "content": "{{ device.id }}"},
            {"path": "/etc/site.conf", "config_map": {"name": "conf", "key": "site.conf"}},
            {"path": "/run/secrets/pw", "secret": {"name": "creds", "key": "password"},
             "mode": 0o400},
        ],
    }],
}  # fmt: skip

pytestmark = pytest.mark.timeout(120)


def core(kube: KubeCluster) -> Any:
    return kubernetes.client.CoreV1Api(kube.api_client)


def put_objects(kube: KubeCluster, *, site: str) -> None:
    api = core(kube)
    config = {"metadata": {"name": "conf"}, "data": {"site.conf": site}}
    secret = {"metadata": {"name": "creds", "labels": {DELIVER_LABEL: "true"}}, "type": "Opaque",
              "data": {"password": base64.b64encode(SECRET).decode()}}  # fmt: skip
    try:
        api.create_namespaced_config_map("ns", config)
    except kubernetes.client.ApiException:  # there: changed
        api.patch_namespaced_config_map("conf", "ns", {"data": {"site.conf": site}})
    with contextlib.suppress(kubernetes.client.ApiException):  # there already
        api.create_namespaced_secret("ns", secret)


def files_of(fleet: Fleet, key: str) -> list[Any] | None:
    entry = fleet.desired().get(key)
    return None if entry is None else list(podman(entry.value).containers[0].files or [])


def unrenderable(kube: KubeCluster) -> list[dict[str, Any]]:
    return list(kube.status("ns", "web").get("unrenderable") or [])


def stream_bytes(fleet: Fleet, server: NatsServer) -> bytes:
    """Every message the desired-state stream holds, through the JetStream API."""

    async def read() -> bytes:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            stream = f"KV_{BUCKET_DESIRED_STATE}"
            info = await js.stream_info(stream)
            out = b""
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                try:
                    msg = await js.get_msg(stream, seq)
                except nats.js.errors.NotFoundError:
                    continue
                out += (msg.subject or "").encode() + (msg.data or b"")
            return out
        finally:
            await nc.close()

    result: bytes = fleet.run(read())
    return result


def test_files_reach_each_device_sealed_to_its_own_key(
    kube: KubeCluster,
    fleet: Fleet,
    nats_server: NatsServer,
    start_operator: Callable[..., Operator],
) -> None:
    seeds = {d: new_seed("user") for d in ("d1", "d2")}
    fleet.join(["d1", "d2", "d3"], {"role": "edge"})
    put_objects(kube, site="paris")
    operator = start_operator(liveness_timeout=LIVE, file_objects_interval=0.5)
    assert operator.files is not None
    # what the Device resources' watch (enrollment) tells it; d3 has no key
    operator.files.set_keys({d: public_key(s, "user") for d, s in seeds.items()}, listed=True)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)

    for device, seed in seeds.items():
        eventually(lambda d=device: files_of(fleet, f"{d}.web") is not None, timeout=30)  # type: ignore[misc]
        files = files_of(fleet, f"{device}.web")
        assert files is not None
        assert files[0].content == device
        assert files[1].content == "paris"
        assert files[1].config_map is None
        assert files[2].secret is None
        assert files[2].sealed is not None
        assert Opener(seed).open(files[2].sealed) == SECRET
    other = files_of(fleet, "d2.web")
    assert other is not None
    with pytest.raises(Exception, match="does not open"):
        Opener(seeds["d1"]).open(other[2].sealed)
    reason = "spec.score.containers[0].files[2].secret: the device has no known enrollment key"
    eventually(
        lambda: (
            [(u["device"], u["reason"][: len(reason)]) for u in unrenderable(kube)]
            == [("d3", reason)]
        ),
        timeout=30,
    )
    assert "d3.web" not in fleet.desired()

    raw = stream_bytes(fleet, nats_server)
    assert b"d1.web" in raw
    assert b"paris" in raw
    assert SECRET not in raw
    assert base64.b64encode(SECRET) not in raw
    store = b"".join(p.read_bytes() for p in Path(nats_server.store_dir).rglob("*") if p.is_file())
    assert SECRET not in store
    assert base64.b64encode(SECRET) not in store

    # a changed ConfigMap reaches the devices (within the read interval)
    put_objects(kube, site="oslo")
    eventually(lambda: (files_of(fleet, "d1.web") or [None, None])[1].content == "oslo", timeout=30)


def test_a_missing_object_or_key_is_listed_naming_the_field(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    fleet.join(["d1"], {"role": "edge"})
    operator = start_operator(liveness_timeout=LIVE, file_objects_interval=0.5)
    assert operator.files is not None
    operator.files.set_keys({"d1": public_key(new_seed("user"), "user")})
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    field = "spec.score.containers[0].files[1].config_map: ConfigMap 'conf' not found"
    eventually(lambda: [u["reason"] for u in unrenderable(kube)] == [field], timeout=30)
    assert "d1.web" not in fleet.desired()

    core(kube).create_namespaced_config_map(
        "ns", {"metadata": {"name": "conf"}, "data": {"other": "x"}}
    )
    missing = "spec.score.containers[0].files[1].config_map: ConfigMap 'conf' has no key"
    eventually(
        lambda: [u["reason"][: len(missing)] for u in unrenderable(kube)] == [missing], timeout=30
    )
    put_objects(kube, site="paris")  # the key, and the Secret: now it resolves
    eventually(lambda: files_of(fleet, "d1.web") is not None, timeout=30)
    eventually(lambda: unrenderable(kube) == [], timeout=30)


@pytest.mark.parametrize(
    "case",
    [
        ({}, "Opaque", f'is not labelled {DELIVER_LABEL}: "true"'),
        ({DELIVER_LABEL: "yes"}, "Opaque", f'is not labelled {DELIVER_LABEL}: "true"'),
        ({DELIVER_LABEL: "true"}, "kubernetes.io/service-account-token", "is a kubernetes.io"),
    ],
)
def test_a_secret_that_did_not_opt_in_is_never_delivered(
    kube: KubeCluster,
    fleet: Fleet,
    start_operator: Callable[..., Operator],
    case: tuple[dict[str, str], str, str],
) -> None:
    labels, secret_type, why = case
    fleet.join(["d1"], {"role": "edge"})
    operator = start_operator(liveness_timeout=LIVE, file_objects_interval=0.5)
    assert operator.files is not None
    operator.files.set_keys({"d1": public_key(new_seed("user"), "user")})
    core(kube).create_namespaced_config_map(
        "ns", {"metadata": {"name": "conf"}, "data": {"site.conf": "x"}}
    )
    core(kube).create_namespaced_secret("ns", {
        "metadata": {"name": "creds", "labels": labels}, "type": secret_type,
        "data": {"password": base64.b64encode(SECRET).decode()},
    })  # fmt: skip
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    field = f"spec.score.containers[0].files[2].secret: Secret 'creds' {why}"
    eventually(
        lambda: [u["reason"][: len(field)] for u in unrenderable(kube)] == [field], timeout=30
    )
    assert "d1.web" not in fleet.desired()
    assert operator.files.secret("ns", "creds") == {}  # read, and its values dropped
    if secret_type == "Opaque":  # the owner opts in: now it is delivered
        core(kube).patch_namespaced_secret(
            "creds", "ns", {"metadata": {"labels": {DELIVER_LABEL: "true"}}}
        )
        eventually(lambda: files_of(fleet, "d1.web") is not None, timeout=30)
        eventually(lambda: unrenderable(kube) == [], timeout=30)


def test_a_new_device_key_reseals_only_that_devices_entry(
    kube: KubeCluster, fleet: Fleet, start_operator: Callable[..., Operator]
) -> None:
    seeds = {d: new_seed("user") for d in ("d1", "d2", "d3")}
    fleet.join(list(seeds), {"role": "edge"})
    put_objects(kube, site="paris")
    operator = start_operator(liveness_timeout=LIVE, file_objects_interval=0.5)
    assert operator.files is not None
    operator.files.set_keys({d: public_key(s, "user") for d, s in seeds.items()}, listed=True)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: all(f"{d}.web" in fleet.desired() for d in seeds), timeout=30)
    before = {k: e.revision for k, e in fleet.desired().items()}
    renewed = new_seed("user")  # d2 enrolls again with a new key (an enrollment elsewhere)
    operator.files.set_keys({"d2": public_key(renewed, "user")})

    def d2_resealed() -> bool:
        files = files_of(fleet, "d2.web")
        return files is not None and Opener(renewed).open(files[2].sealed) == SECRET

    eventually(lambda: _opens(d2_resealed), timeout=30)
    fleet.join(["d4"], {"role": "edge"})  # a later write, so the earlier ones have landed
    eventually(lambda: "d4.web" in unrenderable_devices(kube), timeout=30)
    after = {k: e.revision for k, e in fleet.desired().items()}
    assert after["d1.web"] == before["d1.web"]  # not sealed again: the same entry
    assert after["d3.web"] == before["d3.web"]
    assert after["d2.web"] != before["d2.web"]


def _opens(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except Exception:  # sealed to the old key still: does not open yet
        return False


def unrenderable_devices(kube: KubeCluster) -> set[str]:
    return {f"{u['device']}.web" for u in unrenderable(kube)}
