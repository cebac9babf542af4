"""What a container of a podman score may ask beyond its image: volumes, health, limits.

Why it exists: the optional parts of :class:`~.score.ContainerSpec` (issue 14: named
volumes, devices, host network, user, working dir, entrypoint, labels, capabilities,
health checks, memory and CPU limits) each need a bound and an error naming the field;
kept here so the score module stays readable. :data:`PRIVILEGED_FIELDS` names the
fields that reach outside the container (the privilege policy, docs/security.md): the
operator refuses them unless the Deployment is allowed them, and the agent refuses them
unless its own ``[policy]`` allows them, whatever the desired-state entry says.

Every field here is optional and omitted when left at its default, so a score without
them encodes (and hashes) exactly as before. This module must never do I/O.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Final

import msgspec

from fleet.errors import ContractError, InvalidName

from ._checks import int_field
from .limits import MAX_TEXT_LENGTH
from .names import DNS_LABEL_MAX, DNS_LABEL_PATTERN, DNS_LABEL_RULE, check_dns_label

MAX_VOLUMES: Final = 16
"""Volumes mounted by one container."""
MAX_DEVICES: Final = 16
"""Host devices passed to one container."""
MAX_CAPABILITIES: Final = 41
"""Capabilities added to one container (Linux has 41)."""
MAX_CONTAINER_LABELS: Final = 64
"""Extra labels of one container."""
MAX_PATH_LENGTH: Final = 1024
"""A path inside the container or on the device."""
MAX_HEALTH_SECONDS: Final = 86_400
"""A health check's interval, timeout or start period, in seconds (a day)."""
MAX_HEALTH_TIMEOUT: Final = 300
"""A health check's timeout, in seconds: the agent waits that long for one run."""
MAX_HEALTH_RETRIES: Final = 100
MIN_MEMORY: Final = 6 * 1024 * 1024
"""The smallest memory limit podman accepts (6 MiB)."""
MAX_MEMORY: Final = 2**50
"""The largest memory limit written (1 PiB)."""
MAX_CPUS: Final = 1024.0

OWNER_LABEL_PREFIX: Final = "fleet.nationtech.io/"
"""Labels under this prefix are the agent's own (ownership, spec hash): never a score's."""

PRIVILEGED_FIELDS: Final[tuple[str, ...]] = (
    "privileged", "host_network", "devices", "cap_add", "host_path",
)  # fmt: skip
"""The container fields the privilege policy governs, in the words of the wire
(``host_path``: a volume mount's, ``containers[i].volumes[j].host_path``)."""
HOST_PATH_DENIED: Final[tuple[str, ...]] = (
    "/proc", "/sys", "/dev", "/etc", "/boot", "/root", "/run", "/var/run",
    "/var/lib/containers", "/usr", "/bin", "/sbin", "/lib", "/lib64",
)  # fmt: skip
"""Host paths never bind-mounted, nor anything under them, nor a directory that holds one
(nor ``/`` itself): the kernel's, the system's configuration and binaries, root's home,
the sockets and podman's own storage. On the device the agent also refuses its state
dir, its home and podman's storage wherever they are, once symlinks are resolved
(:mod:`fleet.runtime.host.host_paths`)."""

PATH_RULE: Final = "an absolute path without '..' components, NUL, ':' or ','"
_PATH: Final = re.compile(r"^/[^\x00:,]*$")
DEVICE_PATTERN: Final = r"^/dev/[A-Za-z0-9._/+-]+$"
DEVICE_RULE: Final = "a path under /dev/ (letters, digits, '.', '_', '-', '+', '/')"
_DEVICE: Final = re.compile(DEVICE_PATTERN)
USER_PATTERN: Final = (
    r"^(?:[0-9]{1,10}|[a-z_][a-z0-9_-]{0,31})(?::(?:[0-9]{1,10}|[a-z_][a-z0-9_-]{0,31}))?$"
)
MAX_ID: Final = 2**32 - 2  # the largest uid/gid: 2**32-1 is "no id" to chown(2)
USER_RULE: Final = (
    f"uid[:gid], each a number up to {MAX_ID} or a lowercase user/group name of up to 32 characters"
)
_USER: Final = re.compile(USER_PATTERN)
CAPABILITY_PATTERN: Final = r"^(?:CAP_)?[A-Z][A-Z_]{1,30}$"
_CAPABILITY: Final = re.compile(CAPABILITY_PATTERN)
MEMORY_PATTERN: Final = r"^[0-9]{1,16}(?:[KMGT]i?|[kmgt]|b)?$"
MEMORY_RULE: Final = (
    "a whole number of bytes with an optional unit (Ki, Mi, Gi, Ti; K, M, G, T), "
    'e.g. "256Mi", at least 6Mi'
)
_MEMORY: Final = re.compile(r"^(?P<number>[0-9]{1,16})(?P<unit>[KMGT]i?|[kmgt]|b)?$")
_UNITS: Final = {
    None: 1, "b": 1,
    "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
    "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4,
    "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
}  # fmt: skip

ContainerPath = Annotated[
    str,
    msgspec.Meta(
        description=f"{PATH_RULE}.",
        extra_json_schema={"pattern": _PATH.pattern, "maxLength": MAX_PATH_LENGTH},
    ),
]
Seconds = Annotated[
    int, msgspec.Meta(extra_json_schema={"minimum": 1, "maximum": MAX_HEALTH_SECONDS})
]


def check_path(value: object, *, field: str) -> None:
    """Require :data:`PATH_RULE` of ``value`` (a path inside the container)."""
    if (
        not isinstance(value, str)
        or len(value) > MAX_PATH_LENGTH
        or _PATH.fullmatch(value) is None
        or ".." in value.split("/")
    ):
        shown = repr(value)[:80]
        raise ContractError(f"{field} must be {PATH_RULE}, got {shown}", field=field)


class VolumeMount(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A named podman volume of the deployment, or a host path, mounted at ``path``.

    ``name``: the agent names the podman volume ``fleet-<device>-<deployment>-<name>``
    (with ``.`` between the parts when the deployment or ``name`` has a ``-``): two
    deployments never share one, two containers of one deployment share it when they
    mount the same ``name``. It survives container replacement and updates; it is
    removed with the deployment only when ``remove_with_deployment`` (fixed when the
    volume is first made, like a Kubernetes reclaim policy).

    ``host_path`` (instead of ``name``): a directory or file of the device, bind-mounted
    as it is (never made nor removed by the agent); privileged (``host_path`` of
    :data:`PRIVILEGED_FIELDS`), never under :data:`HOST_PATH_DENIED`.
    """

    name: (
        Annotated[
            str,
            msgspec.Meta(
                description=f"The volume's name in the deployment; {DNS_LABEL_RULE}.",
                extra_json_schema={"pattern": DNS_LABEL_PATTERN, "maxLength": DNS_LABEL_MAX},
            ),
        ]
        | None
    ) = None
    host_path: (
        Annotated[
            str,
            msgspec.Meta(
                description=(
                    f"Instead of name: a host path bind-mounted (privileged); {PATH_RULE}, "
                    "normalised, not / nor under nor holding " + ", ".join(HOST_PATH_DENIED) + "."
                ),
                extra_json_schema={"pattern": _PATH.pattern, "maxLength": MAX_PATH_LENGTH},
            ),
        ]
        | None
    ) = None
    path: ContainerPath
    read_only: bool = False
    remove_with_deployment: bool = False

    def __post_init__(self) -> None:
        if (self.name is None) == (self.host_path is None):
            raise ContractError(
                "a volume mount needs exactly one of name, host_path",
                field="name" if self.name is None else "host_path",
            )
        if self.name is not None:
            try:
                check_dns_label(self.name, what="volume name")
            except InvalidName as exc:
                raise InvalidName(str(exc), field="name") from exc
        else:
            check_host_path(self.host_path)
            if self.remove_with_deployment:
                raise ContractError(
                    "a host path is the device's, never removed with the deployment",
                    field="remove_with_deployment",
                )
        check_path(self.path, field="path")
        if self.path == "/":
            raise ContractError("path must not be the container's root '/'", field="path")


def check_host_path(value: object) -> None:
    """A host path a volume may bind-mount: absolute, normalised, outside the deny list."""
    check_path(value, field="host_path")
    assert isinstance(value, str)  # check_path refused anything else
    if value != posixpath.normpath(value) or "//" in value:
        raise ContractError(
            f"host_path must be a normalised path (no '.', '//' or trailing '/'), "
            f"got {value[:80]!r}",
            field="host_path",
        )
    denied = host_path_denied(value)
    if denied is not None:
        raise ContractError(
            f"host_path {value[:80]!r} is {denied}, which a container may never mount",
            field="host_path",
        )


def host_path_denied(path: str) -> str | None:
    """Why ``path`` (absolute, normalised) may never be bind-mounted, or None: it is
    ``/``, or one of :data:`HOST_PATH_DENIED`, under one, or holds one (``/var`` holds
    ``/var/lib/containers``)."""
    if path == "/":
        return "the device's root"
    for root in HOST_PATH_DENIED:
        if path == root or path.startswith(root + "/"):
            return f"under {root}"
        if root.startswith(path + "/"):
            return f"holds {root}"
    return None


class HealthCheck(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Run ``command`` in the container every ``interval_s`` seconds; ``retries``
    failures in a row make it unhealthy; failures in the first ``start_period_s`` do not
    count. Mapped to podman's healthcheck (``CMD``, exec form: no shell unless asked)."""

    command: Annotated[list[str], msgspec.Meta(extra_json_schema={"minItems": 1, "maxItems": 64})]
    interval_s: Seconds = 30
    timeout_s: Annotated[
        int, msgspec.Meta(extra_json_schema={"minimum": 1, "maximum": MAX_HEALTH_TIMEOUT})
    ] = 5
    retries: Annotated[
        int, msgspec.Meta(extra_json_schema={"minimum": 1, "maximum": MAX_HEALTH_RETRIES})
    ] = 3
    start_period_s: Annotated[
        int, msgspec.Meta(extra_json_schema={"minimum": 0, "maximum": MAX_HEALTH_SECONDS})
    ] = 0

    def __post_init__(self) -> None:
        if not self.command or len(self.command) > 64:
            raise ContractError("command must have 1 to 64 arguments", field="command")
        for arg in self.command:
            if len(arg) > MAX_PATH_LENGTH * 4:
                raise ContractError("command has an argument over 4096 characters", field="command")
        int_field(self, "interval_s", low=1, high=MAX_HEALTH_SECONDS)
        int_field(self, "timeout_s", low=1, high=MAX_HEALTH_TIMEOUT)
        int_field(self, "retries", low=1, high=MAX_HEALTH_RETRIES)
        int_field(self, "start_period_s", low=0, high=MAX_HEALTH_SECONDS)


def parse_memory(value: str) -> int:
    """``"256Mi"`` -> bytes; :class:`ContractError` naming ``memory`` otherwise."""
    match = _MEMORY.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ContractError(
            f"memory must be {MEMORY_RULE}, got {str(value)[:40]!r}", field="memory"
        )
    amount = int(match["number"]) * _UNITS[match["unit"]]
    if not MIN_MEMORY <= amount <= MAX_MEMORY:
        raise ContractError(
            f"memory must be between 6Mi and 1Pi, got {value!r} ({amount} bytes)", field="memory"
        )
    return amount


def check_cpus(value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0.01 <= value <= MAX_CPUS
    ):
        raise ContractError(
            f"cpus must be a number of CPUs between 0.01 and {MAX_CPUS:g}, got {value!r}",
            field="cpus",
        )


def check_user(value: str) -> None:
    if (
        not isinstance(value, str)
        or _USER.fullmatch(value) is None
        or any(part.isdigit() and int(part) > MAX_ID for part in value.split(":"))
    ):
        raise ContractError(f"user must be {USER_RULE}, got {str(value)[:40]!r}", field="user")


def check_devices(devices: list[str]) -> None:
    for index, device in enumerate(devices):
        if (
            not isinstance(device, str)
            or len(device) > MAX_PATH_LENGTH
            or _DEVICE.fullmatch(device) is None
            or ".." in device.split("/")
        ):
            raise ContractError(
                f"devices[{index}] must be {DEVICE_RULE}, got {str(device)[:80]!r}",
                field=f"devices[{index}]",
            )


def check_capabilities(caps: list[str]) -> None:
    for index, cap in enumerate(caps):
        if not isinstance(cap, str) or _CAPABILITY.fullmatch(cap) is None:
            raise ContractError(
                f"cap_add[{index}] must be a capability name such as NET_ADMIN, "
                f"got {str(cap)[:40]!r}",
                field=f"cap_add[{index}]",
            )


def check_container_labels(labels: dict[str, str]) -> None:
    for key, value in labels.items():
        where = f"labels[{key[:40]!r}]"
        if not key or len(key) > 253 or "=" in key or "\x00" in key:
            raise ContractError(
                f"label key {key[:40]!r} must be 1 to 253 characters, without '=' or NUL",
                field="labels",
            )
        if key.startswith(OWNER_LABEL_PREFIX):
            raise ContractError(
                f"label {key!r} is under {OWNER_LABEL_PREFIX!r}, which is the agent's own "
                "(ownership and spec hash): a score may not set it",
                field="labels",
            )
        if len(value) > MAX_TEXT_LENGTH or "\x00" in value:
            raise ContractError(
                f"{where}: a label value must be at most {MAX_TEXT_LENGTH} characters, no NUL",
                field="labels",
            )
