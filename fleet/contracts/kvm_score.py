"""The ``kvm`` score: one virtual machine a device runs through libvirt.

Why it exists: a device that has libvirt can run a whole guest where a container will not
do (another kernel, another OS, hardware isolation). The score says what the guest boots
from (a disk image, or a kernel with an optional initrd and command line: direct kernel
boot), how big it is, its cloud-init data, which guest ports the device forwards from its
loopback or host ports (user-mode networking only: a guest never joins a host bridge), and
whether it starts with the host. Every file it names is an :class:`Artifact`: a URL the
device can fetch (``http``, ``https``) or an absolute path on the device, optionally with a
``sha256`` the device checks before it boots anything from it.

Like every score struct it omits fields equal to their defaults when encoded, so a later
optional field does not change the canonical form of older scores. This module must never
do I/O.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

import msgspec

from fleet.errors import ContractError, InvalidName

from ._checks import int_field
from .limits import MAX_PORTS, check_length
from .names import DNS_LABEL_MAX, DNS_LABEL_PATTERN, DNS_LABEL_RULE, check_dns_label
from .score import PORT_PROTOCOLS, SCORE_TAG_FIELD, Port, PortProtocol

KVM_SCORE_TYPE: Final = "kvm"

MAX_ARTIFACT_LENGTH: Final = 2048
"""An artifact's ``url``, in characters."""
MAX_CMDLINE_LENGTH: Final = 4096
"""A kernel command line, in characters."""
MAX_CLOUD_INIT_BYTES: Final = 32 * 1024
"""Cloud-init user data (and meta data), in characters."""
MIN_MEMORY_MIB: Final = 16
MAX_MEMORY_MIB: Final = 1024 * 1024
MAX_VCPUS: Final = 256

SHA256_PATTERN: Final = r"^[0-9a-f]{64}$"
ARTIFACT_RULE: Final = (
    "an http:// or https:// URL, or an absolute path on the device (no '..' component), "
    "without whitespace or control characters"
)
_SHA256: Final = re.compile(SHA256_PATTERN)
_NO_SPACE: Final = re.compile(r"^[^\s\x00-\x1f\x7f]+$")


def _check_artifact_url(url: object) -> None:
    if not isinstance(url, str) or not url or _NO_SPACE.fullmatch(url) is None:
        raise ContractError(f"url must be {ARTIFACT_RULE}, got {url!r}", field="url")
    check_length(url, field="url", limit=MAX_ARTIFACT_LENGTH)
    if url.startswith(("http://", "https://")):
        if len(url.split("://", 1)[1]) == 0:
            raise ContractError(f"url must be {ARTIFACT_RULE}, got {url!r}", field="url")
        return
    if not url.startswith("/") or ".." in url.split("/"):
        raise ContractError(f"url must be {ARTIFACT_RULE}, got {url!r}", field="url")


class Artifact(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A file the device fetches (or finds) and caches: a disk image, a kernel, an initrd."""

    url: Annotated[
        str,
        msgspec.Meta(
            description=f"Where the device gets it: {ARTIFACT_RULE}.",
            extra_json_schema={"minLength": 1, "maxLength": MAX_ARTIFACT_LENGTH},
        ),
    ]
    sha256: (
        Annotated[
            str,
            msgspec.Meta(
                description="The file's SHA-256 in lowercase hex; checked before use.",
                extra_json_schema={"pattern": SHA256_PATTERN},
            ),
        ]
        | None
    ) = None

    def __post_init__(self) -> None:
        _check_artifact_url(self.url)
        if self.sha256 is not None and (
            not isinstance(self.sha256, str) or _SHA256.fullmatch(self.sha256) is None
        ):
            raise ContractError(
                f"sha256 must be 64 lowercase hex digits, got {self.sha256!r}", field="sha256"
            )


class KernelBoot(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Direct kernel boot: the guest starts this kernel (and initrd) without firmware."""

    kernel: Artifact
    initrd: Artifact | None = None
    cmdline: (
        Annotated[str, msgspec.Meta(extra_json_schema={"maxLength": MAX_CMDLINE_LENGTH})] | None
    ) = None

    def __post_init__(self) -> None:
        check_length(self.cmdline, field="cmdline", limit=MAX_CMDLINE_LENGTH)
        if self.cmdline is not None and "\x00" in self.cmdline:
            raise ContractError("cmdline must not hold NUL", field="cmdline")


class CloudInit(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A cloud-init NoCloud seed the guest reads at first boot."""

    user_data: Annotated[str, msgspec.Meta(extra_json_schema={"maxLength": MAX_CLOUD_INIT_BYTES})]
    meta_data: (
        Annotated[str, msgspec.Meta(extra_json_schema={"maxLength": MAX_CLOUD_INIT_BYTES})] | None
    ) = None

    def __post_init__(self) -> None:
        check_length(self.user_data, field="user_data", limit=MAX_CLOUD_INIT_BYTES)
        check_length(self.meta_data, field="meta_data", limit=MAX_CLOUD_INIT_BYTES)


class GuestPort(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Forward the device's ``host_port`` to the guest's ``guest_port`` (user-mode network)."""

    host_port: Port
    guest_port: Port
    protocol: PortProtocol = "tcp"

    def __post_init__(self) -> None:
        int_field(self, "host_port", low=1, high=65535)
        int_field(self, "guest_port", low=1, high=65535)
        if self.protocol not in PORT_PROTOCOLS:
            raise ContractError(
                f"protocol must be one of {PORT_PROTOCOLS}, got {self.protocol!r}",
                field="protocol",
            )


class KvmScore(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    tag=KVM_SCORE_TYPE,
    tag_field=SCORE_TAG_FIELD,
):
    """Run one virtual machine, booted from ``disk`` or ``boot`` (at least one of them)."""

    name: Annotated[
        str,
        msgspec.Meta(
            description=f"The machine's name within the score; {DNS_LABEL_RULE}.",
            extra_json_schema={"pattern": DNS_LABEL_PATTERN, "maxLength": DNS_LABEL_MAX},
        ),
    ] = "vm"
    disk: Artifact | None = None
    boot: KernelBoot | None = None
    memory_mib: Annotated[
        int, msgspec.Meta(extra_json_schema={"minimum": MIN_MEMORY_MIB, "maximum": MAX_MEMORY_MIB})
    ] = 256
    vcpus: Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 1, "maximum": MAX_VCPUS})] = 1
    cloud_init: CloudInit | None = None
    ports: (
        Annotated[list[GuestPort], msgspec.Meta(extra_json_schema={"maxItems": MAX_PORTS})] | None
    ) = None
    health_port: (
        Annotated[
            int,
            msgspec.Meta(
                description=(
                    "A host_port of ``ports``: Running only once it accepts a TCP connection."
                ),
                extra_json_schema={"minimum": 1, "maximum": 65535},
            ),
        ]
        | None
    ) = None
    autostart: bool = True

    def __post_init__(self) -> None:
        try:
            check_dns_label(self.name, what="machine name")
        except InvalidName as exc:
            raise InvalidName(str(exc), field="name") from exc
        if self.disk is None and self.boot is None:
            raise ContractError("a kvm score needs a disk or a boot kernel (or both)", field="disk")
        int_field(self, "memory_mib", low=MIN_MEMORY_MIB, high=MAX_MEMORY_MIB)
        int_field(self, "vcpus", low=1, high=MAX_VCPUS)
        check_length(self.ports, field="ports", limit=MAX_PORTS, what="ports")
        published: set[tuple[int, str]] = set()
        for index, port in enumerate(self.ports or ()):
            if (port.host_port, port.protocol) in published:
                raise ContractError(
                    f"host port {port.host_port}/{port.protocol} is forwarded twice",
                    field=f"ports[{index}].host_port",
                )
            published.add((port.host_port, port.protocol))
        if self.health_port is not None:
            int_field(self, "health_port", low=1, high=65535)
            if (self.health_port, "tcp") not in published:
                raise ContractError(
                    f"health_port {self.health_port} is not a tcp host_port of ports",
                    field="health_port",
                )
        if not isinstance(self.autostart, bool):
            raise ContractError(
                f"autostart must be true or false, got {self.autostart!r}", field="autostart"
            )
