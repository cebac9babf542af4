"""The agent as a wheelhouse a device installs offline: fleet's wheel and every dependency.

Why it exists: a device may have no index to install from (the pool's VMs have none), so
device setup carries the agent over SSH: fleet's wheel built from this checkout (or one
the user gives) and wheels of its dependencies for the device's Python and architecture,
in one tar the device installs with ``pip --no-index``. A wheelhouse is cached under
``$HARMONY_DATA_DIR/fleet/wheels/<key>/``, ``<key>`` a hash of what it is made from (the
checkout's package files, or the given wheel's bytes) and the device's Python tag and
architecture: the same checkout gives the same key, so a second setup of a device finds
it already installed, and the wheel is built once per change.

Dependencies for a device like this machine (same Python tag and architecture) come from
``pip wheel`` (which can build an sdist); for another (a Raspberry Pi from an x86 laptop)
from ``pip download --only-binary=:all:`` for that platform: only published wheels.

What it must never do: hand out a half-made wheelhouse (it is made in a scratch folder
renamed into place, under a lock), or name a key that does not change with the code.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .errors import ProvisioningFailed
from .locks import held
from .paths import FleetPaths

CHECKOUT: Final = Path(__file__).resolve().parents[2]  # the checkout this package is in
# beside fleet/, what changes the agent: its dependencies and version (README.md only
# changes the wheel's description, and a device is not reinstalled for it)
SOURCE_FILES: Final = ("pyproject.toml",)
PIP_TIMEOUT: Final = 1200.0
ARCHES: Final = {"x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


@dataclass(frozen=True)
class Wheelhouse:
    """A cached wheelhouse: its folder, its key and the fleet wheel in it."""

    folder: Path
    key: str
    fleet_wheel: str  # the file name

    def tar(self) -> bytes:
        """The wheelhouse as an uncompressed tar (wheels are zip files already)."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for wheel in sorted(self.folder.glob("*.whl")):
                tar.add(wheel, arcname=wheel.name)
        return buffer.getvalue()


def host_python_tag() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def source_key(checkout: Path = CHECKOUT) -> str:
    """A hash of what fleet's wheel is built from: every file of the package, and
    ``pyproject.toml`` (its dependencies and version)."""
    digest = hashlib.sha256()
    files = [checkout / name for name in SOURCE_FILES if (checkout / name).is_file()]
    files += [
        p for p in (checkout / "fleet").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    ]  # fmt: skip
    for path in sorted(files):
        digest.update(str(path.relative_to(checkout)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def ensure_wheelhouse(
    paths: FleetPaths,
    *,
    python_tag: str,
    arch: str,
    wheel: Path | None = None,
    checkout: Path = CHECKOUT,
    say: Callable[[str], None] = lambda _line: None,
) -> Wheelhouse:
    """The wheelhouse for a device with ``python_tag`` (``cp311``) on ``arch``
    (``uname -m``): of ``wheel`` when given, else of fleet built from ``checkout``."""
    key = wheelhouse_key(python_tag=python_tag, arch=arch, wheel=wheel, checkout=checkout)
    folder = paths.fleet / "wheels" / key
    with held(paths.fleet / "wheels" / f".{key}.lock"):
        if (folder / "COMPLETE").is_file():
            return _found(folder, key)
        say(f"building the agent's wheelhouse ({key}): once per change of the code")
        scratch = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=folder.parent))
        try:
            fleet_wheel = _fleet_wheel(scratch, wheel=wheel, checkout=checkout)
            _dependencies(scratch, fleet_wheel, python_tag=python_tag, arch=ARCHES[arch])
            (scratch / "COMPLETE").write_text(fleet_wheel.name + "\n", encoding="utf-8")
            shutil.rmtree(folder, ignore_errors=True)
            scratch.rename(folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return _found(folder, key)


def wheelhouse_key(
    *, python_tag: str, arch: str, wheel: Path | None = None, checkout: Path = CHECKOUT
) -> str:
    """The key of the wheelhouse :func:`ensure_wheelhouse` makes (without making it)."""
    if arch not in ARCHES:
        raise ProvisioningFailed(f"no wheels for architecture {arch} (only x86_64, aarch64)")
    if wheel is not None:
        if not wheel.is_file() or not wheel.name.startswith("fleet-") or wheel.suffix != ".whl":
            raise ProvisioningFailed(f"--agent-wheel {wheel}: not a fleet-*.whl file")
        origin = "wheel-" + hashlib.sha256(wheel.read_bytes()).hexdigest()[:16]
    else:
        if not (checkout / "pyproject.toml").is_file():
            raise ProvisioningFailed(
                f"no fleet checkout at {checkout} to build the agent from: give --agent-wheel"
            )
        origin = "src-" + source_key(checkout)
    return f"{origin}-{python_tag}-{ARCHES[arch]}"


def _found(folder: Path, key: str) -> Wheelhouse:
    name = (folder / "COMPLETE").read_text(encoding="utf-8").strip()
    return Wheelhouse(folder=folder, key=key, fleet_wheel=name)


def _pip(*args: str, what: str) -> None:
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False,
            stdin=subprocess.DEVNULL, env={**os.environ, "PIP_NO_INPUT": "1"},
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise ProvisioningFailed(f"{what}: pip did not finish within {PIP_TIMEOUT:.0f} s") from exc
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        said = lines[-1].strip()[:240] if lines else f"exit {done.returncode}"
        raise ProvisioningFailed(f"{what}: {said}")


def _fleet_wheel(scratch: Path, *, wheel: Path | None, checkout: Path) -> Path:
    if wheel is not None:
        return Path(shutil.copy2(wheel, scratch / wheel.name))
    # built from a copy: setuptools writes build/ and *.egg-info where it builds, and the
    # wheel then holds exactly what source_key hashed
    source = scratch / "source"
    shutil.copytree(checkout / "fleet", source / "fleet",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))  # fmt: skip
    for name in (*SOURCE_FILES, "README.md", "LICENSE"):
        if (checkout / name).is_file():
            shutil.copy2(checkout / name, source / name)
    _pip("wheel", "--no-deps", "--wheel-dir", str(scratch), str(source),
         what=f"building fleet's wheel from {checkout}")  # fmt: skip
    shutil.rmtree(source)
    built = sorted(scratch.glob("fleet-*.whl"))
    if len(built) != 1:
        raise ProvisioningFailed(f"building fleet's wheel from {checkout} made {len(built)} wheels")
    return built[0]


def _dependencies(scratch: Path, fleet_wheel: Path, *, python_tag: str, arch: str) -> None:
    here = ARCHES.get(platform.machine())
    if python_tag == host_python_tag() and arch == here:
        _pip("wheel", "--wheel-dir", str(scratch), str(fleet_wheel),
             what="gathering the agent's dependencies (pip wheel)")  # fmt: skip
        return
    version = f"{python_tag[2]}.{python_tag[3:]}"
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in (17, 24, 28, 31, 34)] + [
        f"manylinux2014_{arch}",
        f"linux_{arch}",
    ]
    _pip(
        "download", "--only-binary=:all:", "--dest", str(scratch),
        "--python-version", version, "--implementation", "cp",
        *[arg for p in platforms for arg in ("--platform", p)],
        str(fleet_wheel),
        what=f"downloading the agent's dependencies for {python_tag} on {arch}",
    )  # fmt: skip
