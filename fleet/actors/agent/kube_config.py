"""The agent config's ``[kubernetes]`` table: the cluster a device that is a cluster runs on.

Why it exists: with ``[kubernetes]`` the agent also runs ``kubernetes`` scores
(docs/runtimes.md, "kubernetes"): ``kubeconfig`` (a path to a kubeconfig file, required,
readable at start), ``context`` (one of its contexts; default its current one) and
``field_manager`` (the server-side apply field manager, default ``fleet-agent``: a name
the cluster shows in ``managedFields``). Kept apart from :mod:`.config` so each runtime's
table is read by a module of its own.

What it must never do: talk to the cluster (a cluster away at start is the runtime's
``Failed``, retried; a wrong file is a config error, exit 2).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

import msgspec

from fleet.errors import ConfigError

DEFAULT_FIELD_MANAGER: Final = "fleet-agent"
_KEYS: Final = frozenset({"kubeconfig", "context", "field_manager"})
_FIELD_MANAGER: Final = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.:]{0,127}$")


class KubernetesConfig(msgspec.Struct, frozen=True, kw_only=True):
    """``[kubernetes]``: run ``kubernetes`` scores on the cluster of ``kubeconfig``."""

    kubeconfig: Path
    context: str | None = None
    field_manager: str = DEFAULT_FIELD_MANAGER


def parse_kubernetes(doc: dict[str, Any], *, where: str) -> KubernetesConfig | None:
    """The ``[kubernetes]`` table of a config document, or None when it has none."""
    if "kubernetes" not in doc:
        return None
    table = doc["kubernetes"]
    if not isinstance(table, dict):
        raise ConfigError(
            f"{where}: key `kubernetes` must be a table ([kubernetes]), got {table!r}"
        )
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key `kubernetes.{unknown[0]}` (known: {', '.join(sorted(_KEYS))})"
        )
    path = table.get("kubeconfig")
    if not isinstance(path, str) or not path:
        raise ConfigError(
            f"{where}: key `kubernetes.kubeconfig` must be the path of a kubeconfig file, "
            f"got {path!r}"
        )
    try:
        with Path(path).open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{where}: key `kubernetes.kubeconfig`: cannot read {path}: {exc.strerror}"
        ) from exc
    context = table.get("context")
    if context is not None and (not isinstance(context, str) or not context):
        raise ConfigError(
            f"{where}: key `kubernetes.context` must be a context's name, got {context!r}"
        )
    manager = table.get("field_manager", DEFAULT_FIELD_MANAGER)
    if not isinstance(manager, str) or _FIELD_MANAGER.fullmatch(manager) is None:
        raise ConfigError(
            f"{where}: key `kubernetes.field_manager` must be 1 to 128 letters, digits, "
            f"'-', '_', '.', ':', got {manager!r}"
        )
    return KubernetesConfig(kubeconfig=Path(path), context=context, field_manager=manager)
