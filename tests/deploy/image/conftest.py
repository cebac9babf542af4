"""The operator image, built as a user builds it: ``podman build -f deploy/Containerfile``
from the repository root, on a Debian base made from Debian's packages (:mod:`.base`).

``operator_image`` (session) is the image's name in the private podman world of
``tests/fixtures/podman.py`` (the agent tests' one: runc, cgroupfs, its own storage),
built once per session. The build reaches PyPI only (the Containerfile's first stage
builds the wheels), with the host's pip settings passed as the Containerfile's build
arguments, so a TLS-intercepting proxy's CA or a mirror works as it does for the host.
Like the podman fixtures it skips when it cannot run here, except under ``CI=true``,
where it fails: CI must never go green without having built and run the image.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from fleet.devtools.podman_sandbox import PodmanEnv
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from tests.deploy.conftest import DEPLOY, REPO
from tests.operator.sim import Fleet

from .base import BASE_PATH, BaseRecipe, BaseUnavailable, rootfs

CONTAINERFILE = DEPLOY / "Containerfile"
IMAGE = "localhost/harmony-fleet-operator:test"


@dataclass(frozen=True, kw_only=True)
class BuiltImage:
    name: str
    base: str


def build_argv(*, base: str, tag: str | None) -> list[str]:
    """``podman build`` of deploy/Containerfile on ``base``, with the host's pip settings."""
    argv = ["build", "--pull=never", "--network=host", "-f", str(CONTAINERFILE),
            "--build-arg", f"BASE_IMAGE={base}"]  # fmt: skip
    ca = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
    if Path(ca).is_file():  # the bundle the host's pip trusts (a proxy's CA, if any)
        argv += ["-v", f"{ca}:/run/pip-ca.pem:ro", "--build-arg", "PIP_CERT=/run/pip-ca.pem"]
    if os.environ.get("PIP_INDEX_URL"):
        argv += ["--build-arg", f"PIP_INDEX_URL={os.environ['PIP_INDEX_URL']}"]
    return [*argv, *(["-t", tag] if tag else []), str(REPO)]


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the operator image must be built in CI but cannot be here: {reason}",
                    pytrace=False)  # fmt: skip
    pytest.skip(f"the operator image cannot be built here: {reason}")


@pytest.fixture(scope="session")
def operator_image(podman_env: PodmanEnv) -> BuiltImage:
    recipe = BaseRecipe()
    try:
        tarball = rootfs(recipe)
    except BaseUnavailable as exc:
        unavailable(str(exc))
    started = time.monotonic()
    podman_env.podman("import", "--change", f"ENV=PATH={BASE_PATH}", str(tarball.path),
                      recipe.image, timeout=600)  # fmt: skip
    imported = time.monotonic()
    done = subprocess.run(
        ["podman", *build_argv(base=recipe.image, tag=IMAGE)], env=podman_env.env,
        capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (
        f"podman build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    built = time.monotonic()
    print(  # the figures docs/benchmarks.md records (pytest -s shows them)
        f"\noperator image: base rootfs {'built' if tarball.built else 'cached'} "
        f"{tarball.seconds:.1f} s, import {imported - started:.1f} s, "
        f"podman build {built - imported:.1f} s"
    )
    return BuiltImage(name=IMAGE, base=recipe.image)


@pytest.fixture
def fleet(bus: Bus, event_loop_thread: EventLoopThread) -> Fleet:
    """Simulated devices writing through a real bus (tests/operator/sim.py)."""
    return Fleet(bus, event_loop_thread)
