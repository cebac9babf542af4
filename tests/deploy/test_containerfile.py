"""The operator image recipe: small base, no dev tools, non-root, runs ``fleet-operator``.

No container engine here can pull a base image, so the Containerfile is checked as text:
its instructions parse, what it copies exists, and its entrypoint is the console script
the package declares (the one ``pip install`` puts on PATH in the image).
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


def test_every_stage_builds_on_python_slim() -> None:
    bases = [rest.split()[0] for keyword, rest in instructions() if keyword == "FROM"]
    assert bases
    assert all(re.fullmatch(r"(docker\.io/library/)?python:3\.1[1-9]-slim", b) for b in bases)


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
