"""The ``kubernetes`` score: manifests a device that is a cluster applies into its namespace.

Why it exists: a device may be a whole cluster (OKD, k3s, any conformant API). Its agent
server-side-applies ``manifests`` into ``namespace`` (a namespace the agent owns, created
when missing) with its own field manager, prunes what the score no longer lists, and
reports Running when every workload object it applied is ready.

Each manifest is checked here for its shape only: an object with string ``apiVersion`` and
``kind``, a ``metadata.name`` that is a DNS-1123 subdomain, and no ``metadata.namespace``
other than ``namespace`` (objects go into the agent's namespace, nowhere else; cluster-
scoped kinds are refused by the agent, which knows what its cluster serves). The rest is
the cluster's to validate. No two manifests may name the same object.

Like every score struct it omits fields equal to their defaults when encoded. This module
must never do I/O.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

import msgspec

from fleet.errors import ContractError, InvalidName

from .limits import check_length
from .names import DNS_LABEL_MAX, DNS_LABEL_PATTERN, DNS_LABEL_RULE, check_dns_label
from .score import SCORE_TAG_FIELD

KUBERNETES_SCORE_TYPE: Final = "kubernetes"

MAX_MANIFESTS: Final = 64
"""Objects in one kubernetes score."""
MAX_KIND_LENGTH: Final = 63
MAX_API_VERSION_LENGTH: Final = 253 + 1 + 63
DNS_SUBDOMAIN_MAX: Final = 253
DNS_SUBDOMAIN_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_SUBDOMAIN: Final = re.compile(DNS_SUBDOMAIN_PATTERN)
_KIND: Final = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_API_VERSION: Final = re.compile(r"^(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+[a-z0-9]*$")

Manifest = Annotated[
    dict[str, Any],
    msgspec.Meta(
        description=(
            "A Kubernetes object: apiVersion, kind, metadata.name (a DNS-1123 subdomain), "
            "no metadata.namespace other than the score's namespace."
        ),
        extra_json_schema={"required": ["apiVersion", "kind", "metadata"]},
    ),
]


def manifest_identity(manifest: dict[str, Any]) -> tuple[str, str, str]:
    """``(apiVersion, kind, name)`` of a manifest this module checked."""
    return (manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"])


def _matching(value: object, pattern: re.Pattern[str], limit: int, *, what: str, rule: str,
              field: str) -> str:  # fmt: skip
    """``value``, a string of at most ``limit`` characters matching ``pattern``; otherwise
    the error naming ``field`` and saying ``what`` must be (``rule``)."""
    if not isinstance(value, str) or len(value) > limit or pattern.fullmatch(value) is None:
        raise ContractError(f"{what} must be {rule}, got {repr(value)[:80]}", field=field)
    return value


def _check_manifest(manifest: object, namespace: str, where: str) -> tuple[str, str, str]:
    if not isinstance(manifest, dict):
        raise ContractError("a manifest must be an object", field=where)
    api_version = _matching(manifest.get("apiVersion"), _API_VERSION, MAX_API_VERSION_LENGTH,
                            what="apiVersion", rule="'v1' or 'group/version'",
                            field=f"{where}.apiVersion")  # fmt: skip
    kind = _matching(manifest.get("kind"), _KIND, MAX_KIND_LENGTH, what="kind",
                     rule="a Kubernetes kind (letters and digits)",
                     field=f"{where}.kind")  # fmt: skip
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict):
        raise ContractError("metadata must be an object", field=f"{where}.metadata")
    name = _matching(metadata.get("name"), _DNS_SUBDOMAIN, DNS_SUBDOMAIN_MAX,
                     what="metadata.name", rule="a DNS-1123 subdomain",
                     field=f"{where}.metadata.name")  # fmt: skip
    own = metadata.get("namespace")
    if own is not None and own != namespace:
        raise ContractError(
            f"metadata.namespace {own!r} is not the score's namespace {namespace!r}",
            field=f"{where}.metadata.namespace",
        )
    return (api_version, kind, name)


class KubernetesScore(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    tag=KUBERNETES_SCORE_TYPE,
    tag_field=SCORE_TAG_FIELD,
):
    """Apply these objects into ``namespace`` of the device's cluster (at least one)."""

    namespace: Annotated[
        str,
        msgspec.Meta(
            description=f"The namespace the agent owns for this deployment; {DNS_LABEL_RULE}.",
            extra_json_schema={"pattern": DNS_LABEL_PATTERN, "maxLength": DNS_LABEL_MAX},
        ),
    ]
    manifests: Annotated[
        list[Manifest], msgspec.Meta(extra_json_schema={"minItems": 1, "maxItems": MAX_MANIFESTS})
    ]

    def __post_init__(self) -> None:
        try:
            check_dns_label(self.namespace, what="namespace")
        except InvalidName as exc:
            raise InvalidName(str(exc), field="namespace") from exc
        if not self.manifests:
            raise ContractError("a kubernetes score needs at least one manifest", field="manifests")
        check_length(self.manifests, field="manifests", limit=MAX_MANIFESTS, what="manifests")
        seen: set[tuple[str, str, str]] = set()
        for index, manifest in enumerate(self.manifests):
            api_version, kind, name = _check_manifest(
                manifest, self.namespace, f"manifests[{index}]"
            )
            group = api_version.rpartition("/")[0]
            identity = (group, kind, name)
            if identity in seen:
                raise ContractError(
                    f"{kind} {name!r} is listed twice", field=f"manifests[{index}].metadata.name"
                )
            seen.add(identity)
