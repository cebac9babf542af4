"""The ``podman`` score (:class:`PodmanScore`): the containers a deployment runs on a device.

The desired-state value is a tagged union on the JSON field ``type``
(:data:`fleet.contracts.scores.ReconcileScore`); this module holds its podman variant and
what every variant shares (the tag field, ports). Decoders of an older version reject a
variant they do not know by its ``type`` with a clear error instead of misreading it.

Score structs omit fields equal to their defaults when encoded, so the canonical form
(and :func:`fleet.contracts.codec.score_hash`) does not change when a release adds a new
optional field. This module must never do I/O.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal, TypeAlias, get_args

import msgspec

from fleet.errors import ContractError, InvalidName

from ._checks import int_field
from .files import MAX_FILES, MAX_FILES_BYTES, FileSpec, check_files
from .limits import (
    MAX_COMMAND_ARGS,
    MAX_CONTAINERS,
    MAX_ENV,
    MAX_IMAGE_LENGTH,
    MAX_PORTS,
    check_length,
)
from .names import DNS_LABEL_MAX, DNS_LABEL_PATTERN, DNS_LABEL_RULE, check_dns_label
from .pull_auth import MAX_PULL_SECRETS, MAX_REGISTRY_AUTHS, PullSecretRef, RegistryAuth
from .secret_env import MAX_SECRET_ENV, MAX_SECRET_ENV_TOTAL, SecretEnvSource, check_secret_env
from .workload import (
    CAPABILITY_PATTERN,
    DEVICE_PATTERN,
    MAX_CAPABILITIES,
    MAX_CONTAINER_LABELS,
    MAX_DEVICES,
    MAX_VOLUMES,
    MEMORY_PATTERN,
    USER_PATTERN,
    ContainerPath,
    HealthCheck,
    VolumeMount,
    check_capabilities,
    check_container_labels,
    check_cpus,
    check_devices,
    check_path,
    check_user,
    parse_memory,
)

RestartPolicy: TypeAlias = Literal["always", "on-failure", "no"]
PortProtocol: TypeAlias = Literal["tcp", "udp"]
RESTART_POLICIES: Final[tuple[str, ...]] = get_args(RestartPolicy)
PORT_PROTOCOLS: Final[tuple[str, ...]] = get_args(PortProtocol)
PODMAN_SCORE_TYPE: Final = "podman"
SCORE_TAG_FIELD: Final = "type"

# The image reference grammar of the OCI distribution spec (distribution/reference):
# [domain[:port]/]path[:tag][@digest], lowercase path components joined by '.', '_',
# '__' or dashes. No '..', no leading '/', no whitespace: a reference is also put in
# podman REST paths, so anything else could address another endpoint.
_DOMAIN_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN: Final = (
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)
_PATH_COMPONENT: Final = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG: Final = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST: Final = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_PATTERN: Final = (
    rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?$"
)
IMAGE_RULE: Final = (
    "a non-empty image reference without whitespace, [registry[:port]/]name[:tag][@digest], "
    "the name in lowercase "
    "letters, digits and single separators ('.', '_', '__', '-') between '/'-separated parts"
)
_IMAGE: Final = re.compile(IMAGE_PATTERN)
ENV_NAME_PATTERN: Final = r"^[^=\x00]+$"

# Constraints live in ``extra_json_schema`` (documentation only) and are enforced by the
# ``__post_init__`` checks, whose messages name the bad value and the rule.
ContainerName = Annotated[
    str,
    msgspec.Meta(
        description=f"Unique within the score; {DNS_LABEL_RULE}.",
        extra_json_schema={
            "pattern": DNS_LABEL_PATTERN,
            "minLength": 1,
            "maxLength": DNS_LABEL_MAX,
        },
    ),
]
Image = Annotated[
    str,
    msgspec.Meta(
        description=f"An image reference podman can pull: {IMAGE_RULE}.",
        extra_json_schema={
            "pattern": IMAGE_PATTERN,
            "minLength": 1,
            "maxLength": MAX_IMAGE_LENGTH,
        },
    ),
]
EnvName = Annotated[
    str,
    msgspec.Meta(
        description="Non-empty, no '=' or NUL.", extra_json_schema={"pattern": ENV_NAME_PATTERN}
    ),
]
Port = Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 1, "maximum": 65535})]


class PortMapping(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Publish ``container_port`` on the device's ``host_port``."""

    host_port: Port
    container_port: Port
    protocol: PortProtocol = "tcp"

    def __post_init__(self) -> None:
        int_field(self, "host_port", low=1, high=65535)
        int_field(self, "container_port", low=1, high=65535)
        if self.protocol not in PORT_PROTOCOLS:
            raise ContractError(
                f"protocol must be one of {PORT_PROTOCOLS}, got {self.protocol!r}",
                field="protocol",
            )


class ContainerSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One container of a podman score. An optional field left out (or null) means
    "the image's default"."""

    name: ContainerName
    image: Image
    command: (
        Annotated[list[str], msgspec.Meta(extra_json_schema={"maxItems": MAX_COMMAND_ARGS})] | None
    ) = None
    env: (
        Annotated[dict[EnvName, str], msgspec.Meta(extra_json_schema={"maxProperties": MAX_ENV})]
        | None
    ) = None
    ports: (
        Annotated[list[PortMapping], msgspec.Meta(extra_json_schema={"maxItems": MAX_PORTS})] | None
    ) = None
    restart_policy: RestartPolicy = "always"
    # Issue 14 (docs/workloads.md). Each optional and left out when default, so a
    # score without them encodes and hashes as before. The privileged ones
    # (workload.PRIVILEGED_FIELDS) need the privilege policy's consent.
    volumes: (
        Annotated[list[VolumeMount], msgspec.Meta(extra_json_schema={"maxItems": MAX_VOLUMES})]
        | None
    ) = None
    devices: (
        Annotated[
            list[Annotated[str, msgspec.Meta(extra_json_schema={"pattern": DEVICE_PATTERN})]],
            msgspec.Meta(extra_json_schema={"maxItems": MAX_DEVICES}),
        ]
        | None
    ) = None
    host_network: bool = False
    privileged: bool = False
    cap_add: (
        Annotated[
            list[Annotated[str, msgspec.Meta(extra_json_schema={"pattern": CAPABILITY_PATTERN})]],
            msgspec.Meta(extra_json_schema={"maxItems": MAX_CAPABILITIES}),
        ]
        | None
    ) = None
    user: Annotated[str, msgspec.Meta(extra_json_schema={"pattern": USER_PATTERN})] | None = None
    working_dir: ContainerPath | None = None
    entrypoint: (
        Annotated[list[str], msgspec.Meta(extra_json_schema={"maxItems": MAX_COMMAND_ARGS})] | None
    ) = None
    labels: (
        Annotated[
            dict[str, str], msgspec.Meta(extra_json_schema={"maxProperties": MAX_CONTAINER_LABELS})
        ]
        | None
    ) = None
    healthcheck: HealthCheck | None = None
    memory: Annotated[str, msgspec.Meta(extra_json_schema={"pattern": MEMORY_PATTERN})] | None = (
        None
    )
    cpus: (
        Annotated[float, msgspec.Meta(extra_json_schema={"minimum": 0.01, "maximum": 1024})] | None
    ) = None
    files: (
        Annotated[list[FileSpec], msgspec.Meta(extra_json_schema={"maxItems": MAX_FILES})] | None
    ) = None
    secret_env: (
        Annotated[
            dict[EnvName, SecretEnvSource],
            msgspec.Meta(
                description="Env variables from Secrets (docs/workloads.md); none also in env.",
                extra_json_schema={"maxProperties": MAX_SECRET_ENV},
            ),
        ]
        | None
    ) = None

    def __post_init__(self) -> None:
        self._check_basics()
        self._check_extras()

    def _check_basics(self) -> None:
        try:
            check_dns_label(self.name, what="container name")
        except InvalidName as exc:
            raise InvalidName(str(exc), field="name") from exc
        check_length(self.image, field="image", limit=MAX_IMAGE_LENGTH)
        if not isinstance(self.image, str) or _IMAGE.fullmatch(self.image) is None:
            raise ContractError(f"image must be {IMAGE_RULE}, got {self.image!r}", field="image")
        check_length(self.command, field="command", limit=MAX_COMMAND_ARGS, what="arguments")
        check_length(self.env, field="env", limit=MAX_ENV, what="variables")
        check_length(self.ports, field="ports", limit=MAX_PORTS, what="ports")
        for key in self.env or {}:
            if not key or "=" in key or "\x00" in key:
                raise ContractError(
                    f"invalid env name {key!r}: must be non-empty, without '=' or NUL", field="env"
                )
        if self.restart_policy not in RESTART_POLICIES:
            raise ContractError(
                f"restart_policy must be one of {RESTART_POLICIES}, got {self.restart_policy!r}",
                field="restart_policy",
            )

    def _check_extras(self) -> None:
        check_length(self.volumes, field="volumes", limit=MAX_VOLUMES, what="volumes")
        paths: set[str] = set()
        for index, volume in enumerate(self.volumes or ()):
            if volume.path in paths:
                raise ContractError(
                    f"two volumes are mounted at {volume.path!r}", field=f"volumes[{index}].path"
                )
            paths.add(volume.path)
        if self.host_network and self.ports:
            raise ContractError(
                "ports cannot be published with host_network: the container uses the "
                "device's own ports",
                field="ports",
            )
        check_length(self.devices, field="devices", limit=MAX_DEVICES, what="devices")
        check_devices(self.devices or [])
        check_length(self.cap_add, field="cap_add", limit=MAX_CAPABILITIES, what="capabilities")
        check_capabilities(self.cap_add or [])
        if self.user is not None:
            check_user(self.user)
        if self.working_dir is not None:
            check_path(self.working_dir, field="working_dir")
        check_length(self.entrypoint, field="entrypoint", limit=MAX_COMMAND_ARGS, what="arguments")
        check_length(self.labels, field="labels", limit=MAX_CONTAINER_LABELS, what="labels")
        check_container_labels(self.labels or {})
        if self.memory is not None:
            parse_memory(self.memory)
        if self.cpus is not None:
            check_cpus(self.cpus)
        if self.files is not None:
            check_files(self.files, volume_paths={v.path for v in self.volumes or ()})
        if self.secret_env is not None:
            check_secret_env(self.secret_env, env=self.env)

    @property
    def memory_bytes(self) -> int | None:
        """``memory`` in bytes (checked when built), or None: no limit."""
        return None if self.memory is None else parse_memory(self.memory)

    def privileges(self) -> list[str]:
        """The privileged fields this container sets (:data:`~.workload.PRIVILEGED_FIELDS`),
        as paths in the container (``devices``, ``volumes[1].host_path``): the last part
        is the privilege."""
        used = {
            "privileged": self.privileged,
            "host_network": self.host_network,
            "devices": bool(self.devices),
            "cap_add": bool(self.cap_add),
        }
        paths = [name for name, on in used.items() if on]
        return paths + [
            f"volumes[{index}].host_path"
            for index, volume in enumerate(self.volumes or ())
            if volume.host_path is not None
        ]


Containers = Annotated[
    list[ContainerSpec],
    msgspec.Meta(extra_json_schema={"minItems": 1, "maxItems": MAX_CONTAINERS}),
]


class PodmanScore(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    tag=PODMAN_SCORE_TYPE,
    tag_field=SCORE_TAG_FIELD,
):
    """Run these containers (at least one; unique names; no host port published twice).
    A Deployment's image_pull_secrets become registry_auth, sealed per device, in the
    entries the operator writes (docs/workloads.md, "Registry credentials")."""

    containers: Containers
    image_pull_secrets: (
        Annotated[
            list[PullSecretRef], msgspec.Meta(extra_json_schema={"maxItems": MAX_PULL_SECRETS})
        ]
        | None
    ) = None
    registry_auth: (
        Annotated[
            list[RegistryAuth], msgspec.Meta(extra_json_schema={"maxItems": MAX_REGISTRY_AUTHS})
        ]
        | None
    ) = None

    def __post_init__(self) -> None:
        if not self.containers:
            raise ContractError("a podman score needs at least one container", field="containers")
        check_length(self.containers, field="containers", limit=MAX_CONTAINERS, what="containers")
        names: set[str] = set()
        published: set[tuple[int, str]] = set()
        for index, container in enumerate(self.containers):
            if container.name in names:
                raise ContractError(
                    f"container name {container.name!r} appears twice in the score",
                    field=f"containers[{index}].name",
                )
            names.add(container.name)
            for port_index, port in enumerate(container.ports or ()):
                if (port.host_port, port.protocol) in published:
                    raise ContractError(
                        f"host port {port.host_port}/{port.protocol} is published twice",
                        field=f"containers[{index}].ports[{port_index}].host_port",
                    )
                published.add((port.host_port, port.protocol))
        _check_shared_volumes(self.containers)
        check_length(self.image_pull_secrets, field="image_pull_secrets",
                     limit=MAX_PULL_SECRETS, what="Secrets")  # fmt: skip
        check_length(self.registry_auth, field="registry_auth",
                     limit=MAX_REGISTRY_AUTHS, what="registries")  # fmt: skip
        total = sum(f.size for c in self.containers for f in c.files or ())
        if total > MAX_FILES_BYTES:
            raise ContractError(
                f"the files of the score hold {total} bytes, at most {MAX_FILES_BYTES} allowed",
                field="containers",
            )
        secret_total = sum(s.size for c in self.containers for s in (c.secret_env or {}).values())
        if secret_total > MAX_SECRET_ENV_TOTAL:
            raise ContractError(
                f"the secret_env values of the score hold about {secret_total} bytes, at most "
                f"{MAX_SECRET_ENV_TOTAL} allowed",
                field="containers",
            )


def _check_shared_volumes(containers: list[ContainerSpec]) -> None:
    """Containers mounting one volume must agree on whether it goes with the deployment."""
    removal: dict[str, bool] = {}
    for index, container in enumerate(containers):
        for v_index, volume in enumerate(container.volumes or ()):
            if volume.name is None:  # a host path: the device's, nothing to agree on
                continue
            seen = removal.setdefault(volume.name, volume.remove_with_deployment)
            if seen != volume.remove_with_deployment:
                raise ContractError(
                    f"volume {volume.name!r} is mounted by two containers that disagree on "
                    "remove_with_deployment",
                    field=f"containers[{index}].volumes[{v_index}].remove_with_deployment",
                )
