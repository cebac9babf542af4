"""pykka's internals the pooled actors use are all checked in one place, against this pykka."""

from __future__ import annotations

import ast
from pathlib import Path

from fleet.runtime.actorkit import _pykka

FLEET = Path(__file__).resolve().parents[3] / "fleet"


def test_the_installed_pykka_is_the_one_the_fence_was_written_for() -> None:
    found = _pykka.problems()
    assert found == [], (
        "fleet.runtime.actorkit._pykka was written for another pykka; check pooled actors "
        "against this one, then update the fence: " + "; ".join(found)
    )


def test_no_module_but_the_fence_imports_pykka_internals() -> None:
    """A private pykka name imported anywhere else escapes the version check above."""
    offenders = []
    for path in FLEET.rglob("*.py"):
        if path.name == "_pykka.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pykka"):
                private = (node.module or "").split(".")[-1].startswith("_") or any(
                    alias.name.startswith("_") for alias in node.names
                )
                if private:
                    offenders.append(f"{path.relative_to(FLEET.parent)}:{node.lineno}")
    assert offenders == []
