"""The agent's configuration file (TOML): read, validated, and explained when wrong.

Why it exists: a device is set up by writing one file. Every mistake in it must stop
the agent at start with a message naming the file, the key and what was wrong (the
entry point turns :class:`~fleet.errors.ConfigError` into exit code 2), never with a
traceback. SIGHUP re-reads it; only ``[labels]`` may change at runtime.

Keys (fixed by the product): ``device_id``, ``[labels]``, ``[nats] urls``,
``[podman] socket``, ``[agent] heartbeat_interval_s``, ``[agent] state_dir``.
Optional tuning keys: ``[agent] resync_interval_s`` (periodic drift check, default 10)
and ``[agent] stop_timeout_s`` (grace before SIGKILL when replacing a container,
default 10).

What it must never do: accept a value it would later fail on (a bad device id, a
label Kubernetes would reject, an empty URL list).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import msgspec

from fleet.contracts import DeviceId
from fleet.contracts.labels import check_labels
from fleet.errors import ConfigError, ContractError

DEFAULT_SOCKET = "unix:///run/podman/podman.sock"
DEFAULT_STATE_DIR = "/var/lib/fleet-agent"


class AgentConfig(msgspec.Struct, frozen=True, kw_only=True):
    device_id: DeviceId
    labels: dict[str, str]
    nats_urls: list[str]
    podman_socket: str = DEFAULT_SOCKET
    heartbeat_interval_s: float = 10.0
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    resync_interval_s: float = 10.0
    stop_timeout_s: float = 10.0
    source: Path | None = None


def _table(doc: dict[str, Any], name: str, *, where: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: key `{name}` must be a table ([{name}]), got {value!r}")
    return value


def _positive(table: dict[str, Any], key: str, default: float, *, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}: key `agent.{key}` must be a positive number, got {value!r}")
    return float(value)


def parse_config(text: str, *, where: str) -> AgentConfig:
    """Validate a config document; ``where`` names its file in errors."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from exc
    if "device_id" not in doc:
        raise ConfigError(f'{where}: key `device_id` is missing (e.g. device_id = "pi-01")')
    try:
        device_id = DeviceId.try_new(doc["device_id"])
    except ContractError as exc:
        raise ConfigError(f"{where}: key `device_id`: {exc}") from exc
    labels = _table(doc, "labels", where=where)
    for key, value in labels.items():
        if not isinstance(value, str):
            raise ConfigError(f"{where}: key `labels.{key}` must be a string, got {value!r}")
    try:
        check_labels(labels)
    except ContractError as exc:
        raise ConfigError(f"{where}: key `labels`: {exc}") from exc
    nats = _table(doc, "nats", where=where)
    urls = nats.get("urls")
    if (
        not isinstance(urls, list)
        or not urls
        or not all(isinstance(u, str) and "://" in u for u in urls)
    ):
        raise ConfigError(
            f"{where}: key `nats.urls` must be a non-empty list of URLs like "
            f'"nats://127.0.0.1:4222", got {urls!r}'
        )
    podman = _table(doc, "podman", where=where)
    socket = podman.get("socket", DEFAULT_SOCKET)
    if not isinstance(socket, str) or "://" not in socket:
        raise ConfigError(
            f'{where}: key `podman.socket` must be a URL like "{DEFAULT_SOCKET}", got {socket!r}'
        )
    agent = _table(doc, "agent", where=where)
    state_dir = agent.get("state_dir", DEFAULT_STATE_DIR)
    if not isinstance(state_dir, str) or not state_dir:
        raise ConfigError(f"{where}: key `agent.state_dir` must be a path, got {state_dir!r}")
    return AgentConfig(
        device_id=device_id,
        labels=dict(labels),
        nats_urls=list(urls),
        podman_socket=socket,
        heartbeat_interval_s=_positive(agent, "heartbeat_interval_s", 10.0, where=where),
        state_dir=Path(state_dir),
        resync_interval_s=_positive(agent, "resync_interval_s", 10.0, where=where),
        stop_timeout_s=_positive(agent, "stop_timeout_s", 10.0, where=where),
    )


def load_config(path: Path) -> AgentConfig:
    """Read and validate ``path``; :class:`ConfigError` says what is wrong and where."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from exc
    config = parse_config(text, where=str(path))
    return msgspec.structs.replace(config, source=path)
