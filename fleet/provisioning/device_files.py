"""The files device setup writes on a device: the agent's config, its unit and drop-in,
and podman's registries drop-in; their paths, modes and owners.

Why it exists: one place says what a set-up device holds, byte for byte, so setup
compares what is there with what should be and writes only what differs (a second run
changes nothing). The layout is ``deploy/agent/install.sh``'s, so a device set up by
either is the same device: ``/etc/fleet-agent/config.toml`` (0640 root:fleet-agent),
``nats-ca.pem`` and ``bootstrap.creds`` beside it, ``/etc/systemd/system/fleet-agent.service``
with the drop-in ``fleet-agent.service.d/10-podman-user.conf``.

What it must never do: write a config the agent would refuse (device id, labels, URLs
and token are checked by the contracts' own rules first: :func:`agent_config`), or
print a token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Final

from fleet.contracts.enrollment import TOKEN_PATTERN
from fleet.contracts.labels import check_labels
from fleet.contracts.names import check_device_id
from fleet.errors import ConfigError, ContractError

AGENT_USER: Final = "fleet-agent"
HOME: Final = "/var/lib/fleet-agent"
STATE_DIR: Final = f"{HOME}/state"
VENV: Final = "/opt/fleet-agent/venv"
LINK: Final = "/usr/local/bin/fleet-agent"
CONFIG: Final = "/etc/fleet-agent/config.toml"
CA: Final = "/etc/fleet-agent/nats-ca.pem"
BOOTSTRAP: Final = "/etc/fleet-agent/bootstrap.creds"
UNIT: Final = "/etc/systemd/system/fleet-agent.service"
DROPIN: Final = "/etc/systemd/system/fleet-agent.service.d/10-podman-user.conf"
REGISTRIES: Final = "/etc/containers/registries.conf.d/50-fleet.conf"
_REGISTRY: Final = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:[0-9]{1,5})?$")


@dataclass(frozen=True)
class DeviceFile:
    """A file as it should be on the device."""

    path: str
    content: bytes
    mode: str  # octal, as ``stat -c %a`` prints it
    owner: str  # user:group

    @property
    def secret(self) -> bool:
        return self.mode.endswith("0")  # not world-readable: the config, the credential


def toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's; no surrogate pairs with
    ``ensure_ascii=False``)."""
    return json.dumps(value, ensure_ascii=False)


def check_setup_values(
    *, device_id: str, labels: Mapping[str, str], nats_urls: Sequence[str], token: str | None
) -> None:
    """The values the agent would refuse, refused here first (:class:`ConfigError`)."""
    try:
        check_device_id(device_id)
        check_labels(labels)
    except ContractError as exc:
        raise ConfigError(str(exc)) from exc
    if not nats_urls:
        raise ConfigError("no NATS URL for the device: give --device-nats-url (or --nats-url)")
    for url in nats_urls:
        if "://" not in url or not url.isprintable() or any(c.isspace() for c in url):
            raise ConfigError(f"NATS URL {url[:80]!r} is not a URL (nats://HOST:PORT)")
    if token is not None and not re.fullmatch(TOKEN_PATTERN, token):
        raise ConfigError(
            "the enrollment token must look like <6 of a-z0-9>.<16 to 64 of a-z0-9> "
            "(as fleetctl token create prints it)"
        )


def agent_config(
    *,
    device_id: str,
    labels: Mapping[str, str],
    nats_urls: Sequence[str],
    podman_socket: str,
    ca: bool,
    bootstrap: bool,
    token: str | None,
    heartbeat_interval_s: float = 10.0,
) -> bytes:
    """``/etc/fleet-agent/config.toml`` (docs/agent.md has every key)."""
    check_setup_values(device_id=device_id, labels=labels, nats_urls=nats_urls, token=token)
    lines = [
        "# fleet-agent configuration, written by fleet device setup (fleetctl device setup):",
        "# a re-run rewrites it. Labels may change at runtime: systemctl reload fleet-agent",
        f"device_id = {toml_string(device_id)}",
        "",
        "[labels]",
        *(f"{toml_string(k)} = {toml_string(v)}" for k, v in sorted(labels.items())),
        "",
        "[nats]",
        "urls = [" + ", ".join(toml_string(u) for u in nats_urls) + "]",
    ]
    if ca:
        lines.append(f"ca = {toml_string(CA)}")
    if bootstrap:
        lines += ["", "[enrollment]", f"bootstrap_credentials = {toml_string(BOOTSTRAP)}"]
        if token is not None:
            lines.append(f"token = {toml_string(token)}")
    lines += [
        "",
        "[podman]",
        f"socket = {toml_string(podman_socket)}",
        "",
        "[agent]",
        f"heartbeat_interval_s = {heartbeat_interval_s:g}",
        f"state_dir = {toml_string(STATE_DIR)}",
        "",
    ]
    return "\n".join(lines).encode()


def unit_file() -> bytes:
    """The agent's systemd unit: ``deploy/agent/fleet-agent.service``, as packaged."""
    return resources.files(__package__).joinpath("files/fleet-agent.service").read_bytes()


def podman_dropin(uid: int) -> bytes:
    return (
        "# Written by fleet device setup: the agent talks to the rootless podman of user\n"
        f"# {AGENT_USER} (uid {uid}), served by that user's systemd instance.\n"
        "[Unit]\n"
        f"Wants=user@{uid}.service\n"
        f"After=user@{uid}.service\n"
    ).encode()


def registries_dropin(insecure: Sequence[str]) -> bytes:
    """Registries podman reaches over plain HTTP (a local mirror on the site's network)."""
    for registry in insecure:
        match = _REGISTRY.fullmatch(registry)
        if not match or (match[2] and not 0 < int(match[2][1:]) < 65536):
            raise ConfigError(f"--insecure-registry {registry[:80]!r} is not HOST[:PORT]")
    body = "".join(
        f"[[registry]]\nlocation = {toml_string(r)}\ninsecure = true\n\n" for r in insecure
    )
    return ("# Written by fleet device setup (--insecure-registry).\n\n" + body).encode()


def podman_socket(uid: int) -> str:
    return f"unix:///run/user/{uid}/podman/podman.sock"
