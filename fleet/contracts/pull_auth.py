"""Registry credentials of a podman score: named by the Deployment, sealed on the bus.

Why it exists: a private registry needs a password (issue 14, docs/workloads.md
"Registry credentials"). A Deployment names Secrets of type
``kubernetes.io/dockerconfigjson`` in ``image_pull_secrets`` (Kubernetes' own words, at
the score's level as at a pod's); the operator reads each and writes, per device, one
:class:`RegistryAuth` per registry in it: the registry's host (``host[:port]``) and
``{"username": ..., "password": ...}`` (JSON) sealed to the device's key
(:mod:`.sealed`). An agent refuses an entry that still names Secrets (it cannot read
them), uses a credential for the pulls from its registry only, and never writes it to
disk in clear. Optional and omitted when default. Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

import msgspec

from fleet.errors import ContractError

from .files import OBJECT_PATTERN, OBJECT_RULE
from .sealed import SealedValue

MAX_PULL_SECRETS: Final = 8
MAX_REGISTRY_AUTHS: Final = 16
REGISTRY_PATTERN: Final = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:[0-9]{1,5})?$"
REGISTRY_RULE: Final = "a registry host with an optional port, e.g. registry.example.com:5000"
_REGISTRY: Final = re.compile(REGISTRY_PATTERN)
_OBJECT: Final = re.compile(OBJECT_PATTERN)
DOCKER_HUB: Final = "docker.io"
_HUB_ALIASES: Final = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


class PullSecretRef(msgspec.Struct, frozen=True, kw_only=True):
    """A Secret of type ``kubernetes.io/dockerconfigjson`` in the Deployment's namespace."""

    name: Annotated[str, msgspec.Meta(extra_json_schema={"pattern": OBJECT_PATTERN})]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or _OBJECT.fullmatch(self.name) is None:
            raise ContractError(
                f"name must be {OBJECT_RULE}, got {str(self.name)[:60]!r}", field="name"
            )


class RegistryAuth(msgspec.Struct, frozen=True, kw_only=True):
    """One registry's credential, sealed to the device (see the module doc)."""

    registry: Annotated[str, msgspec.Meta(extra_json_schema={"pattern": REGISTRY_PATTERN})]
    sealed: SealedValue

    def __post_init__(self) -> None:
        if not isinstance(self.registry, str) or _REGISTRY.fullmatch(self.registry) is None:
            raise ContractError(
                f"registry must be {REGISTRY_RULE}, got {str(self.registry)[:60]!r}",
                field="registry",
            )


def image_registry(image: str) -> str:
    """The registry an image reference is pulled from (Docker's rule: a first component
    with '.' or ':' or ``localhost`` is a host; otherwise Docker Hub)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return canonical_registry(first)
    return DOCKER_HUB


def canonical_registry(host: str) -> str:
    """A registry host as compared: lowercase, Docker Hub's aliases as ``docker.io``."""
    host = host.lower()
    return DOCKER_HUB if host in _HUB_ALIASES else host
