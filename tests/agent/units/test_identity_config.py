"""The agent's identity keys: ``[nats] ca``, ``[nats] credentials``, ``[enrollment]``;
every mistake names its key, and a token's value is never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.actors.agent.config import DEFAULT_RENEW_AFTER, AgentConfig, parse_config
from fleet.errors import ConfigError

BASE = """
device_id = "pi-01"
[nats]
urls = ["nats://127.0.0.1:4222"]
{nats}
{rest}
"""


def parse(nats: str = "", rest: str = "") -> AgentConfig:
    return parse_config(BASE.format(nats=nats, rest=rest), where="agent.toml")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("ca.pem", "bootstrap.creds", "device.creds")}
    for path in paths.values():
        path.write_text("x")
    return paths


def test_without_identity_keys_nothing_changes() -> None:
    config = parse()
    assert config.enrollment is None
    assert config.nats_ca is None
    assert config.secured is False


def test_enrollment_keys(files: dict[str, Path]) -> None:
    config = parse_config(
        BASE.format(
            nats=f'ca = "{files["ca.pem"]}"',
            rest=f'[enrollment]\nbootstrap_credentials = "{files["bootstrap.creds"]}"\n'
            'token = "abc123.0123456789abcdef"\nrenew_after = 0.5',
        ),
        where="agent.toml",
    )
    assert config.nats_ca == files["ca.pem"]
    assert config.enrollment is not None
    assert config.enrollment.bootstrap_credentials == files["bootstrap.creds"]
    assert config.enrollment.token == "abc123.0123456789abcdef"
    assert config.enrollment.renew_after == 0.5
    assert config.secured


def test_credentials_given_by_hand(files: dict[str, Path]) -> None:
    config = parse_config(
        BASE.format(nats=f'credentials = "{files["device.creds"]}"', rest=""), where="a.toml"
    )
    assert config.nats_credentials == files["device.creds"]
    assert config.enrollment is None
    assert config.secured


@pytest.mark.parametrize(
    ("nats", "rest", "key"),
    [
        ('ca = "/nonexistent/ca.pem"', "", "nats.ca"),
        ("ca = 3", "", "nats.ca"),
        ('credentials = ""', "", "nats.credentials"),
        ("", "[enrollment]\ntoken = 'abc123.0123456789abcdef'", "enrollment.bootstrap_credentials"),
        (
            "",
            "[enrollment]\nbootstrap_credentials = '/nonexistent'",
            "enrollment.bootstrap_credentials",
        ),
        (
            "",
            "[enrollment]\nbootstrap_credentials = '{b}'\nrenew_after = 1.5",
            "enrollment.renew_after",
        ),
        (
            "",
            "[enrollment]\nbootstrap_credentials = '{b}'\nrenew_after = true",
            "enrollment.renew_after",
        ),
        ("", "[enrollment]\nbootstrap_credentials = '{b}'\nrenewal = 0.5", "enrollment.renewal"),
        ("credentials = '{d}'", "[enrollment]\nbootstrap_credentials = '{b}'", "nats.credentials"),
    ],
)
def test_mistakes_name_their_key(files: dict[str, Path], nats: str, rest: str, key: str) -> None:
    fill = {"b": files["bootstrap.creds"], "d": files["device.creds"]}
    with pytest.raises(ConfigError, match=f"agent.toml: .*`{key}`"):
        parse(nats.format(**fill), rest.format(**fill))


def test_enrollment_must_be_a_table() -> None:
    text = 'device_id = "pi-01"\nenrollment = 3\n[nats]\nurls = ["nats://127.0.0.1:4222"]\n'
    with pytest.raises(ConfigError, match=r"`enrollment` must be a table"):
        parse_config(text, where="agent.toml")


@pytest.mark.parametrize("token", ["secret-value-xyz", "ABC123.0123456789abcdef", "abc123.short"])
def test_a_bad_token_is_named_but_never_shown(files: dict[str, Path], token: str) -> None:
    rest = f"[enrollment]\nbootstrap_credentials = '{files['bootstrap.creds']}'\ntoken = '{token}'"
    with pytest.raises(ConfigError, match=r"`enrollment\.token`") as caught:
        parse(rest=rest)
    assert token not in str(caught.value)


def test_renew_after_defaults_to_two_thirds(files: dict[str, Path]) -> None:
    config = parse_config(
        BASE.format(
            nats="", rest=f"[enrollment]\nbootstrap_credentials = '{files['bootstrap.creds']}'"
        ),
        where="a.toml",
    )
    assert config.enrollment is not None
    assert config.enrollment.renew_after == DEFAULT_RENEW_AFTER
