"""The agent's configuration file (TOML): read, validated, and explained when wrong.

Why it exists: a device is set up by writing one file. Every mistake in it must stop
the agent at start with a message naming the file, the key and what was wrong (the
entry point turns :class:`~fleet.errors.ConfigError` into exit code 2), never with a
traceback. SIGHUP re-reads it; only ``[labels]`` may change at runtime.

Keys (fixed by the product): ``device_id``, ``[labels]``, ``[nats] urls``,
``[podman] socket``, ``[agent] heartbeat_interval_s``, ``[agent] state_dir``.
Optional tuning keys: ``[agent] resync_interval_s`` (periodic drift check, default 10)
and ``[agent] stop_timeout_s`` (grace before SIGKILL when replacing a container,
default 10). Identity on the bus (docs/agent.md, "Enrollment"), all optional:
``[nats] ca`` (the CA of the server's certificate: TLS), ``[nats] credentials`` (a
``.creds`` file given by hand), or ``[enrollment] bootstrap_credentials`` (the agent
makes its own key and asks to join), with ``[enrollment] token`` and
``[enrollment] renew_after`` (the share of a credential's lifetime after which it is
renewed, default 2/3). Without any of them the agent connects as it always did.
``[metrics] address`` (``HOST:PORT``, off by default; e.g. ``127.0.0.1:9101``) serves the
agent's own ``/metrics``, ``/healthz`` and ``/readyz`` (docs/agent.md, "Metrics").
``[policy] allow`` (a list of ``privileged``, ``host_network``, ``devices``, ``cap_add``;
empty by default) names the privileged container fields this device will run
(docs/security.md, "Privileged workloads").

``[kubernetes]`` (``kubeconfig``, ``context``, ``field_manager``: :mod:`.kube_config`) makes
the device run ``kubernetes`` scores on that cluster too (docs/runtimes.md).
``[kvm]`` (``enabled``, ``uri``, ``cache_dir``: :mod:`.kvm_config`) makes the device run
``kvm`` scores (virtual machines) through libvirt too (docs/runtimes.md).

What it must never do: accept a value it would later fail on (a bad device id, a
label Kubernetes would reject, an empty URL list).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from fleet.contracts import PRIVILEGED_FIELDS, DeviceId
from fleet.contracts.enrollment import MAX_TOKEN_LENGTH, TOKEN_PATTERN
from fleet.contracts.labels import check_labels
from fleet.errors import ConfigError, ContractError
from fleet.runtime.prometheus.address import parse_address

from .kube_config import KubernetesConfig, parse_kubernetes
from .kvm_config import KvmConfig, parse_kvm

DEFAULT_SOCKET = "unix:///run/podman/podman.sock"
DEFAULT_STATE_DIR = "/var/lib/fleet-agent"


DEFAULT_RENEW_AFTER = 2 / 3
_TOKEN = re.compile(TOKEN_PATTERN)


class EnrollmentConfig(msgspec.Struct, frozen=True, kw_only=True):
    """``[enrollment]``: join the fleet with a key of the device's own."""

    bootstrap_credentials: Path
    token: str | None = None
    renew_after: float = DEFAULT_RENEW_AFTER


class AgentConfig(msgspec.Struct, frozen=True, kw_only=True):
    device_id: DeviceId
    labels: dict[str, str]
    nats_urls: list[str]
    podman_socket: str = DEFAULT_SOCKET
    heartbeat_interval_s: float = 10.0
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    resync_interval_s: float = 10.0
    stop_timeout_s: float = 10.0
    nats_ca: Path | None = None
    nats_credentials: Path | None = None
    enrollment: EnrollmentConfig | None = None
    metrics_address: tuple[str, int] | None = None
    kubernetes: KubernetesConfig | None = None  # [kubernetes]: kube_config.py
    kvm: KvmConfig | None = None  # [kvm]: kvm_config.py
    allow_privileges: frozenset[str] = frozenset()
    source: Path | None = None

    @property
    def secured(self) -> bool:
        """The agent connects with credentials (its own, or given by hand)."""
        return self.nats_credentials is not None or self.enrollment is not None


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


def _file(table: dict[str, Any], key: str, *, table_name: str, where: str) -> Path | None:
    """An optional path to a file that must exist and be readable now."""
    if key not in table:
        return None
    value = table[key]
    name = f"{table_name}.{key}"
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: key `{name}` must be a path to a file, got {value!r}")
    path = Path(value)
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{where}: key `{name}`: cannot read {path}: {exc.strerror}") from exc
    return path


def _enrollment(doc: dict[str, Any], *, where: str) -> EnrollmentConfig | None:
    if "enrollment" not in doc:
        return None
    table = _table(doc, "enrollment", where=where)
    bootstrap = _file(table, "bootstrap_credentials", table_name="enrollment", where=where)
    if bootstrap is None:
        raise ConfigError(
            f"{where}: key `enrollment.bootstrap_credentials` is missing (the .creds file "
            "that may only ask to join)"
        )
    token = table.get("token")
    if token is not None and (
        not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(token)
    ):
        raise ConfigError(  # the token is a secret: its value is never shown
            f"{where}: key `enrollment.token` must be a string like <6 of a-z0-9>.<16 to "
            "64 of a-z0-9> (the value is not shown)"
        )
    renew_after = table.get("renew_after", DEFAULT_RENEW_AFTER)
    if (
        isinstance(renew_after, bool)
        or not isinstance(renew_after, int | float)
        or not 0.1 <= renew_after <= 0.9
    ):
        raise ConfigError(
            f"{where}: key `enrollment.renew_after` must be a share of the credential's "
            f"lifetime between 0.1 and 0.9, got {renew_after!r}"
        )
    unknown = sorted(set(table) - {"bootstrap_credentials", "token", "renew_after"})
    if unknown:
        raise ConfigError(f"{where}: unknown key `enrollment.{unknown[0]}`")
    return EnrollmentConfig(
        bootstrap_credentials=bootstrap, token=token, renew_after=float(renew_after)
    )


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
    nats_ca = _file(nats, "ca", table_name="nats", where=where)
    nats_credentials = _file(nats, "credentials", table_name="nats", where=where)
    enrollment = _enrollment(doc, where=where)
    if nats_credentials is not None and enrollment is not None:
        raise ConfigError(
            f"{where}: keys `nats.credentials` and `[enrollment]` exclude each other: "
            "credentials given by hand, or enrollment, not both"
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
        allow_privileges=_policy(doc, where=where),
        metrics_address=_metrics_address(doc, where=where),
        kubernetes=parse_kubernetes(doc, where=where),
        kvm=parse_kvm(doc, where=where),
        device_id=device_id,
        labels=dict(labels),
        nats_urls=list(urls),
        podman_socket=socket,
        heartbeat_interval_s=_positive(agent, "heartbeat_interval_s", 10.0, where=where),
        state_dir=Path(state_dir),
        resync_interval_s=_positive(agent, "resync_interval_s", 10.0, where=where),
        stop_timeout_s=_positive(agent, "stop_timeout_s", 10.0, where=where),
        nats_ca=nats_ca,
        nats_credentials=nats_credentials,
        enrollment=enrollment,
    )


def _policy(doc: dict[str, Any], *, where: str) -> frozenset[str]:
    policy = _table(doc, "policy", where=where)
    unknown = sorted(set(policy) - {"allow"})
    if unknown:
        raise ConfigError(f"{where}: unknown key `policy.{unknown[0]}` (only `allow`)")
    allow = policy.get("allow", [])
    if not isinstance(allow, list) or not all(a in PRIVILEGED_FIELDS for a in allow):
        raise ConfigError(
            f"{where}: key `policy.allow` must be a list of privileged fields this device "
            f"runs, each one of {', '.join(PRIVILEGED_FIELDS)}; got {allow!r}"
        )
    return frozenset(allow)


def _metrics_address(doc: dict[str, Any], *, where: str) -> tuple[str, int] | None:
    metrics = _table(doc, "metrics", where=where)
    unknown = sorted(set(metrics) - {"address"})
    if unknown:
        raise ConfigError(f"{where}: unknown key `metrics.{unknown[0]}` (only `address`)")
    address = metrics.get("address", "off")
    if not isinstance(address, str):
        raise ConfigError(
            f'{where}: key `metrics.address` must be "HOST:PORT" or "off", got {address!r}'
        )
    try:
        return parse_address(address)
    except ValueError as exc:
        raise ConfigError(f"{where}: key `metrics.address`: {exc}") from exc


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
