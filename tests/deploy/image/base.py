"""A Debian 12 base image made from Debian's own packages, for building the operator image.

Why it exists: no registry of base images is reachable from this machine or CI's, so the
operator image cannot be built ``FROM python:3.11-slim``. ``mmdebstrap`` makes a minimal
Debian root (``--variant=minbase`` plus python3, its venv module and the CA bundle) from
Debian's package registry, and ``podman import`` turns that tarball into an image the
Containerfile takes as ``BASE_IMAGE``. The tarball is cached outside the repository
(``$XDG_CACHE_HOME/fleet/debian-base/``, default ``~/.cache``), under a key made of its whole
recipe (suite, variant, packages, dpkg options), so a second run on one machine skips the
build; change the recipe and the key changes. ``rm -r ~/.cache/fleet/debian-base`` makes it
take Debian's newest packages again.

What it must never do: write into the repository, leave a half-written tarball where a
later run would take it for a cached one (it is written beside it and renamed), or build
twice at once (two test runs on one machine take turns on a lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

#: Bump when the way a tarball is made changes in a way the fields below do not show.
RECIPE_FORMAT = 1
#: A PATH for the imported image (a rootfs tarball carries no environment of its own).
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BaseUnavailable(Exception):
    """The base cannot be made here (the message says why: mmdebstrap missing or failing)."""


@dataclass(frozen=True, kw_only=True)
class BaseRecipe:
    """What goes into the base: Debian ``suite``, mmdebstrap ``variant``, extra packages."""

    suite: str = "bookworm"
    variant: str = "minbase"
    #: what the Containerfile needs of its base: python3 >= 3.11 with venv (ensurepip),
    #: groupadd/useradd (passwd is in minbase) and CA certificates for TLS to NATS/the API
    include: tuple[str, ...] = ("ca-certificates", "python3", "python3-venv")
    #: translations, manuals and docs (copyright notices kept): about 45 MB nobody reads
    dpkg_options: tuple[str, ...] = (
        "path-exclude=/usr/share/locale/*",
        "path-exclude=/usr/share/man/*",
        "path-exclude=/usr/share/info/*",
        "path-exclude=/usr/share/doc/*",
        "path-include=/usr/share/doc/*/copyright",
    )

    @property
    def key(self) -> str:
        """A name for this recipe: the same recipe, the same key, on every machine."""
        recipe = {"format": RECIPE_FORMAT, **asdict(self)}
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def image(self) -> str:
        return f"localhost/fleet-debian-base:{self.suite}-{self.key}"

    def mmdebstrap_argv(self, target: Path) -> list[str]:
        return [
            "mmdebstrap", f"--variant={self.variant}", f"--include={','.join(self.include)}",
            *(f"--dpkgopt={option}" for option in self.dpkg_options),
            self.suite, str(target),
        ]  # fmt: skip


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "fleet" / "debian-base"


@dataclass(frozen=True, kw_only=True)
class CachedRootfs:
    path: Path
    built: bool  # made now (False: taken from the cache)
    seconds: float  # what getting it took, waiting for the lock included


def rootfs(
    recipe: BaseRecipe, *, directory: Path | None = None, timeout: float = 900
) -> CachedRootfs:
    """The recipe's rootfs tarball: from the cache, else built with mmdebstrap and cached."""
    started = time.monotonic()
    directory = directory or cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{recipe.suite}-{recipe.key}.tar"
    with _locked(directory / ".lock"):
        if target.is_file():
            return CachedRootfs(path=target, built=False, seconds=time.monotonic() - started)
        if shutil.which("mmdebstrap") is None:
            raise BaseUnavailable("mmdebstrap is not installed (scripts/system-deps installs it)")
        _build(recipe, target=target, timeout=timeout)
    return CachedRootfs(path=target, built=True, seconds=time.monotonic() - started)


def _build(recipe: BaseRecipe, *, target: Path, timeout: float) -> None:
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".tar")
    os.close(fd)
    partial = Path(name)
    try:
        done = subprocess.run(
            recipe.mmdebstrap_argv(partial), stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise BaseUnavailable(
                f"{' '.join(recipe.mmdebstrap_argv(target))} failed "
                f"(exit {done.returncode}):\n{done.stderr[-3000:]}"
            )
        partial.chmod(0o644)  # mkstemp makes it 0600
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield
