"""The operator image recipe: small base, no dev tools, non-root, runs ``fleet-operator``.

Checked as text here: its instructions parse, every stage builds on the one base given as
``BASE_IMAGE`` (default ``python:3.11-slim``), what it copies exists, no build argument
reaches the final image, and its entrypoint is the console script the package declares
(the one ``pip install`` puts on the image's PATH). ``tests/deploy/image/`` builds it with
podman on a Debian base made from Debian's packages and runs it.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib

from tests.deploy.conftest import DEPLOY, REPO

CONTAINERFILE = DEPLOY / "Containerfile"
INSTRUCTIONS = {"FROM", "WORKDIR", "COPY", "RUN", "LABEL", "ENV", "USER", "ENTRYPOINT", "ARG"}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        assert keyword in INSTRUCTIONS, f"{CONTAINERFILE}: unexpected instruction {keyword!r}"
        out.append((keyword, rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last_from:]


def global_args() -> dict[str, str]:
    """The ARGs before the first FROM (those a FROM line may use), with their defaults."""
    out = {}
    for keyword, rest in instructions():
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            out[name] = default
    return out


def test_every_stage_builds_on_the_base_image_argument_python_slim_by_default() -> None:
    bases = [rest.split()[0] for keyword, rest in instructions() if keyword == "FROM"]
    assert len(bases) == 2
    assert all(b == "${BASE_IMAGE}" for b in bases), bases
    default = global_args().get("BASE_IMAGE")
    assert default is not None, "no ARG BASE_IMAGE=<default> before the first FROM"
    assert re.fullmatch(r"docker\.io/library/python:3\.1[1-9]-slim", default), default


def test_build_arguments_stay_in_the_build_stage() -> None:
    """pip's settings (a mirror, a proxy's CA) help the build; the image keeps none."""
    steps = instructions()
    first_from = min(i for i, (k, _) in enumerate(steps) if k == "FROM")
    stage_args = [
        rest.partition("=")[0] for keyword, rest in steps[first_from:] if keyword == "ARG"
    ]
    assert set(stage_args) == {"PIP_INDEX_URL", "PIP_CERT"}
    assert not [rest for keyword, rest in final_stage() if keyword == "ARG"]
    assert not any("PIP_CERT" in rest or "PIP_INDEX_URL" in rest for _, rest in final_stage())


def test_entrypoint_is_the_fleet_operator_console_script() -> None:
    (entrypoint,) = [rest for keyword, rest in instructions() if keyword == "ENTRYPOINT"]
    command = json.loads(entrypoint)
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert command == ["fleet-operator"]
    assert "fleet-operator" in scripts, "pyproject.toml [project.scripts] lacks fleet-operator"


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    steps = final_stage()
    assert steps.index(("USER", users[-1])) > max(i for i, (k, _) in enumerate(steps) if k == "RUN")


def test_it_installs_the_package_without_dev_extras_from_sources_that_exist() -> None:
    for keyword, rest in instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, _dest = shlex.split(rest)
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        if keyword == "RUN" and "pip" in rest:
            assert "[dev]" not in rest
            assert "-e " not in rest
    runs = " ".join(rest for keyword, rest in final_stage() if keyword == "RUN")
    assert "--no-cache-dir" in runs
    assert re.search(r"pip install .*--no-index --find-links /tmp/wheels fleet\b", runs)


def test_the_entrypoint_is_on_the_images_path() -> None:
    """``fleet-operator`` lives in the image's venv; PATH must name it, and set in full:
    an imported base (``podman import``) has no PATH of its own to extend."""
    runs = " ".join(rest for keyword, rest in final_stage() if keyword == "RUN")
    venv = re.search(r"python3 -m venv (\S+)", runs)
    assert venv is not None, "the final stage makes no venv"
    env = " ".join(rest for keyword, rest in final_stage() if keyword == "ENV")
    path = re.search(r"\bPATH=(\S+)", env)
    assert path is not None
    assert path.group(1).split(":")[0] == f"{venv.group(1)}/bin"
    assert "$" not in path.group(1)
    assert {"/usr/local/bin", "/usr/bin", "/bin"} <= set(path.group(1).split(":"))
