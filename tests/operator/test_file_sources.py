"""The operator's resolution of a score's file references for one device."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

import msgspec
import pytest

from fleet.actors.operator.file_sources import Unresolvable, references, resolve
from fleet.contracts import SealedValue, convert_score, encode_score
from fleet.runtime.nats.claims import new_seed, public_key
from fleet.runtime.sealing import Opener

pytestmark = pytest.mark.timeout(30)


class Objects:
    def __init__(self) -> None:
        self.maps: dict[str, dict[str, str]] = {"conf": {"site.conf": "site=a\n"}}
        self.secrets: dict[str, dict[str, bytes]] = {"tls": {"tls.key": b"PRIVATE-KEY-BYTES"}}

    def config_map(self, name: str) -> Mapping[str, str] | None:
        return self.maps.get(name)

    def secret(self, name: str) -> Mapping[str, bytes] | None:
        return self.secrets.get(name)


def tree(*files: dict[str, Any]) -> dict[str, Any]:
    return {"type": "podman", "containers": [{"name": "a", "image": "b", "files": list(files)}]}


CONF = {"path": "/etc/site.conf", "config_map": {"name": "conf", "key": "site.conf"}}
KEY = {"path": "/run/tls.key", "secret": {"name": "tls", "key": "tls.key"}, "mode": 0o400}


def test_configmaps_are_inlined_and_secrets_sealed_to_the_device() -> None:
    seed = new_seed("user")
    score = tree(CONF, KEY)
    assert references(score) == [("config_map", "conf"), ("secret", "tls")]
    out = resolve(score, sources=Objects(), public_key=public_key(seed, "user"))
    value = encode_score(convert_score(out))
    assert b"PRIVATE-KEY-BYTES" not in value
    files = out["containers"][0]["files"]
    assert files[0] == {"path": "/etc/site.conf", "content": "site=a\n"}
    sealed = msgspec.convert(files[1]["sealed"], SealedValue)
    assert Opener(seed).open(sealed) == b"PRIVATE-KEY-BYTES"
    assert "secret" in score["containers"][0]["files"][1]  # the spec's tree is untouched


@pytest.mark.parametrize(
    ("file", "key", "reason"),
    [
        (
            {**CONF, "config_map": {"name": "gone", "key": "x"}},
            "k",
            "files[0].config_map: ConfigMap 'gone' not found",
        ),
        ({**CONF, "config_map": {"name": "conf", "key": "x"}}, "k", "has no key 'x'"),
        (
            {**KEY, "secret": {"name": "gone", "key": "x"}},
            "k",
            "files[0].secret: Secret 'gone' not found",
        ),
        (KEY, None, "files[0].secret: the device has no known enrollment key"),
        (KEY, "Ubad", "cannot seal"),
    ],
)
def test_what_cannot_be_resolved_names_the_field(
    file: dict[str, Any], key: str | None, reason: str
) -> None:
    device_key = public_key(new_seed("user"), "user") if key == "k" else key
    with pytest.raises(Unresolvable, match=re.escape(reason)) as caught:
        resolve(tree(file), sources=Objects(), public_key=device_key)
    assert "PRIVATE-KEY-BYTES" not in str(caught.value)


def test_a_value_over_the_bound_is_refused() -> None:
    objects = Objects()
    objects.maps["conf"]["site.conf"] = "x" * 20000
    with pytest.raises(Unresolvable, match="at most 16384"):
        resolve(tree(CONF), sources=objects, public_key=None)


class Registry(Objects):
    def __init__(self, dockerconfig: bytes, kind: str = "kubernetes.io/dockerconfigjson") -> None:
        super().__init__()
        data = _Typed({".dockerconfigjson": dockerconfig})
        data.secret_type = kind
        self.secrets["regcred"] = data


class _Typed(dict[str, bytes]):
    secret_type = ""


PULL = {"type": "podman", "image_pull_secrets": [{"name": "regcred"}],
        "containers": [{"name": "a", "image": "reg.example:5000/a"}]}  # fmt: skip


def test_pull_secrets_become_sealed_registry_credentials() -> None:
    seed = new_seed("user")
    config = msgspec.json.encode({"auths": {
        "https://reg.example:5000/v1/": {"auth": base64.b64encode(b"bob:pw:with:colons").decode()},
        "index.docker.io": {"username": "alice", "password": "hub"},
    }})  # fmt: skip
    assert references(PULL) == [("secret", "regcred")]
    out = resolve(PULL, sources=Registry(config), public_key=public_key(seed, "user"))
    assert "image_pull_secrets" not in out
    score = convert_score(out)
    assert b"pw:with:colons" not in encode_score(score)
    opened = {
        auth.registry: msgspec.json.decode(Opener(seed).open(auth.sealed))
        for auth in score.registry_auth or ()  # type: ignore[union-attr]
    }
    assert opened == {
        "docker.io": {"username": "alice", "password": "hub"},
        "reg.example:5000": {"username": "bob", "password": "pw:with:colons"},
    }


@pytest.mark.parametrize(
    ("config", "kind", "reason"),
    [
        (b"{not json", "kubernetes.io/dockerconfigjson", "is not a docker config with auths"),
        (b'{"auths": {}}', "kubernetes.io/dockerconfigjson", "is not a docker config"),
        (b'{"auths": {"r.io": {"auth": "bm9jb2xvbg=="}}}', "kubernetes.io/dockerconfigjson",
         "auths['r.io'] has no username and password"),
        (b'{"auths": {"r.io": {"username": "u", "password": "p"}}}', "Opaque",
         "is not of type kubernetes.io/dockerconfigjson"),
    ],
)  # fmt: skip
def test_a_malformed_dockerconfigjson_names_the_field(
    config: bytes, kind: str, reason: str
) -> None:
    with pytest.raises(Unresolvable) as caught:
        resolve(
            PULL, sources=Registry(config, kind), public_key=public_key(new_seed("user"), "user")
        )
    assert str(caught.value).startswith("spec.score.image_pull_secrets[0]: ")
    assert reason in str(caught.value)
    assert "bm9jb2xvbg" not in str(caught.value)


def env_tree(source: dict[str, Any]) -> dict[str, Any]:
    container = {"name": "a", "image": "b", "secret_env": {"DB_PASSWORD": source}}
    return {"type": "podman", "containers": [container]}


ENV_REF = {"secret": {"name": "tls", "key": "tls.key"}}


def test_secret_env_values_are_sealed_to_the_device() -> None:
    seed = new_seed("user")
    assert references(env_tree(ENV_REF)) == [("secret", "tls")]
    out = resolve(env_tree(ENV_REF), sources=Objects(), public_key=public_key(seed, "user"))
    source = out["containers"][0]["secret_env"]["DB_PASSWORD"]
    assert list(source) == ["sealed"]
    assert Opener(seed).open(msgspec.convert(source["sealed"], SealedValue)) == (
        b"PRIVATE-KEY-BYTES"
    )
    assert b"PRIVATE-KEY-BYTES" not in encode_score(convert_score(out))


@pytest.mark.parametrize(
    ("value", "ref", "reason"),
    [
        (None, {"name": "gone", "key": "x"}, "Secret 'gone' not found"),
        (None, {"name": "tls", "key": "x"}, "Secret 'tls' has no key 'x'"),
        (b"a\0b", None, "secret_env.DB_PASSWORD.secret: the value holds a NUL byte"),
        (b"x" * 5000, None, "the value is 5000 bytes, at most 4096 allowed"),
    ],
)  # fmt: skip
def test_a_secret_env_that_cannot_be_resolved_names_the_field(
    value: bytes | None, ref: dict[str, str] | None, reason: str
) -> None:
    objects = Objects()
    if value is not None:
        objects.secrets["tls"]["tls.key"] = value
    source = {"secret": ref} if ref is not None else ENV_REF
    with pytest.raises(Unresolvable, match=re.escape(reason)) as caught:
        resolve(env_tree(source), sources=objects, public_key=public_key(new_seed("user"), "user"))
    assert str(caught.value).startswith("spec.score.containers[0].secret_env.DB_PASSWORD.secret: ")
    assert "a\0b" not in str(caught.value)
