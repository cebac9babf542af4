"""The agent's admission rules and health-check schedule, without podman or NATS."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fleet.actors.agent.admission import Admission
from fleet.actors.agent.config import parse_config
from fleet.actors.agent.probing import HealthChecks
from fleet.contracts import ContainerSpec, HealthCheck, decode_score
from fleet.contracts.unknown import unknown_score_field
from fleet.errors import ConfigError


def value(**fields: Any) -> bytes:
    container = {"name": "a", "image": "busybox", **fields}
    return msgspec.json.encode({"type": "podman", "containers": [container]})


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ({"gpus": 1}, "containers[0].gpus"),
        ({"ports": [{"host_port": 1, "container_port": 2, "host_ip": "x"}]},
         "containers[0].ports[0].host_ip"),
        ({"healthcheck": {"command": ["true"], "exec": "sh"}}, "containers[0].healthcheck.exec"),
        ({"volumes": [{"name": "v", "path": "/v", "size": 1}]}, "containers[0].volumes[0].size"),
        ({"secret_env": {"T": {"secret": {"name": "s", "key": "k"}, "vault": "x"}}},
         "containers[0].secret_env.T.vault"),
    ],
)  # fmt: skip
def test_a_field_this_agent_does_not_know_is_named(extra: dict[str, Any], path: str) -> None:
    raw = value(**extra)
    score = decode_score(raw)  # the lenient decoder reads it...
    assert unknown_score_field(msgspec.json.decode(raw)) == path
    refused = Admission().refuse("web", raw, score)  # ...the agent will not run it
    assert refused is not None
    assert f"`{path}`" in refused


def test_known_fields_and_the_tag_pass() -> None:
    raw = value(env={"any-key": "x"}, labels={"k": "v"}, healthcheck={"command": ["true"]})
    assert unknown_score_field(msgspec.json.decode(raw)) is None
    assert Admission().refuse("web", raw, decode_score(raw)) is None


def test_privileges_are_refused_unless_the_device_allows_them() -> None:
    raw = value(devices=["/dev/video0"], cap_add=["NET_ADMIN"])
    score = decode_score(raw)
    refused = Admission().refuse("cam", raw, score)
    assert refused is not None
    assert "`containers[0].devices`" in refused
    refused = Admission(allow={"devices"}).refuse("cam", raw, score)
    assert refused is not None
    assert "`containers[0].cap_add`" in refused
    assert Admission(allow={"devices", "cap_add"}).refuse("cam", raw, score) is None
    assert Admission(allow={"devices", "cap_add", "bogus"}).refuse("cam", raw, score) is None


def test_an_unresolved_secret_env_reference_is_refused_naming_it() -> None:
    raw = value(secret_env={"TOKEN": {"secret": {"name": "s", "key": "k"}}})
    refused = Admission().refuse("gw", raw, decode_score(raw))
    assert refused is not None
    assert "`containers[0].secret_env.TOKEN.secret`" in refused


BASE = 'device_id = "pi-01"\n[nats]\nurls = ["nats://127.0.0.1:4222"]\n'


def test_the_policy_table_is_read_and_checked() -> None:
    assert parse_config(BASE, where="f").allow_privileges == frozenset()
    config = parse_config(BASE + '[policy]\nallow = ["devices", "host_network"]\n', where="f")
    assert config.allow_privileges == {"devices", "host_network"}
    with pytest.raises(ConfigError, match=r"policy\.allow"):
        parse_config(BASE + '[policy]\nallow = ["root"]\n', where="f")
    with pytest.raises(ConfigError, match=r"unknown key `policy\.deny`"):
        parse_config(BASE + "[policy]\ndeny = []\n", where="f")


class Probe:
    def __init__(self) -> None:
        self.runs: list[str] = []
        self.verdict: dict[str, str | None] = {}

    def health(self, container_id: str, *, timeout: float) -> str | None:
        self.runs.append(container_id)
        return self.verdict.get(container_id, "healthy")


def test_checks_run_at_their_interval_and_sum_up() -> None:
    now = [100.0]
    probe = Probe()
    checks = HealthChecks(runtime=probe, clock=lambda: now[0])  # type: ignore[arg-type]
    every5 = ContainerSpec(
        name="a", image="b", healthcheck=HealthCheck(command=["t"], interval_s=5)
    )
    every2 = ContainerSpec(
        name="c", image="b", healthcheck=HealthCheck(command=["t"], interval_s=2)
    )
    plain = ContainerSpec(name="d", image="b")
    containers = {
        "a": (every5, "id-a", True),
        "c": (every2, "id-c", True),
        "d": (plain, "id-d", True),
    }
    assert checks.check(containers) == ("healthy", 2.0)
    assert probe.runs == ["id-a", "id-c"]
    now[0] += 1
    assert checks.check(containers) == ("healthy", 1.0)  # nothing due: nothing run
    assert probe.runs == ["id-a", "id-c"]
    now[0] += 1
    probe.verdict["id-c"] = "unhealthy"
    assert checks.check(containers) == ("unhealthy", 2.0)
    assert probe.runs == ["id-a", "id-c", "id-c"]
    stopped = {"a": (every5, "id-a", False)}
    assert checks.check(stopped) == ("starting", None)  # not running: not checked
    assert checks.check({"d": (plain, "id-d", True)}) == (None, None)


def test_a_runtime_without_probes_reports_starting() -> None:
    checks = HealthChecks(runtime=object(), clock=lambda: 0.0)  # type: ignore[arg-type]
    spec = ContainerSpec(name="a", image="b", healthcheck=HealthCheck(command=["t"]))
    assert checks.check({"a": (spec, "id", True)})[0] == "starting"
