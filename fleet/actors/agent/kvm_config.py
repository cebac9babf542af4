"""The agent config's ``[kvm]`` table: run ``kvm`` scores (virtual machines) through libvirt.

Why it exists: with ``[kvm] enabled = true`` the agent also runs ``kvm`` scores
(docs/runtimes.md, "kvm"): ``uri`` (the libvirt connection, default ``qemu:///system``) and
``cache_dir`` (artifacts, overlays and seeds; default ``<agent.state_dir>/kvm``; it and
its parents must be traversable by the user libvirt runs qemu as) and ``artifact_dirs``
(absolute folders a score's local-path artifact may come from; none by default, so a
score cannot make the agent copy its own files, such as the identity seed). Kept apart from
:mod:`.config` so each runtime's table is read by a module of its own.

What it must never do: talk to libvirtd (a libvirtd away at start is the runtime's
``Failed``, retried; a wrong value is a config error, exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import msgspec

from fleet.errors import ConfigError

DEFAULT_URI: Final = "qemu:///system"
_KEYS: Final = frozenset({"enabled", "uri", "cache_dir", "artifact_dirs"})


class KvmConfig(msgspec.Struct, frozen=True, kw_only=True):
    """``[kvm]``: run ``kvm`` scores on the libvirtd at ``uri``."""

    uri: str = DEFAULT_URI
    cache_dir: Path | None = None  # None: <agent.state_dir>/kvm
    artifact_dirs: tuple[Path, ...] = ()  # where local-path artifacts may be; none by default

    def cache(self, state_dir: Path) -> Path:
        return self.cache_dir if self.cache_dir is not None else state_dir / "kvm"


def parse_kvm(doc: dict[str, Any], *, where: str) -> KvmConfig | None:
    """The ``[kvm]`` table of a config document; None when absent or not enabled."""
    if "kvm" not in doc:
        return None
    table = doc["kvm"]
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: key `kvm` must be a table ([kvm]), got {table!r}")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key `kvm.{unknown[0]}` (known: {', '.join(sorted(_KEYS))})"
        )
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: key `kvm.enabled` must be true or false, got {enabled!r}")
    uri = table.get("uri", DEFAULT_URI)
    if not isinstance(uri, str) or ":" not in uri or any(c.isspace() for c in uri):
        raise ConfigError(
            f'{where}: key `kvm.uri` must be a libvirt URI like "{DEFAULT_URI}", got {uri!r}'
        )
    cache_dir = table.get("cache_dir")
    if cache_dir is not None and (not isinstance(cache_dir, str) or not cache_dir.startswith("/")):
        raise ConfigError(
            f"{where}: key `kvm.cache_dir` must be an absolute path, got {cache_dir!r}"
        )
    dirs = table.get("artifact_dirs", [])
    if not isinstance(dirs, list) or not all(
        isinstance(d, str) and d.startswith("/") for d in dirs
    ):
        raise ConfigError(
            f"{where}: key `kvm.artifact_dirs` must be a list of absolute paths, got {dirs!r}"
        )
    if not enabled:
        return None
    return KvmConfig(
        uri=uri,
        cache_dir=None if cache_dir is None else Path(cache_dir),
        artifact_dirs=tuple(Path(d) for d in dirs),
    )
