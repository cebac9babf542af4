"""fleetctl against a real nats-server, the API emulator, simulated devices and the operator."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleet.cli.fleetctl.main import main
from tests.fixtures.kube import KubeCluster
from tests.fixtures.nats import NatsServer
from tests.operator.conftest import fleet, start_operator  # noqa: F401 -- fixtures reused

WEB = """\
apiVersion: fleet.nationtech.io/v1alpha1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  selector: {matchLabels: {site: lab}}
  score:
    type: podman
    containers: [{name: web, image: localhost/busybox:test}]
"""


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        import json

        return json.loads(self.out)


@pytest.fixture
def ctl(
    nats_server: NatsServer, kube: KubeCluster, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Result]:
    """Run ``fleetctl ARGS`` in-process against the test's NATS and API."""

    def run(*args: str) -> Result:
        out = io.StringIO()
        capsys.readouterr()
        code = main([*args, "--nats-url", nats_server.url, "--kube-url", kube.url], out=out)
        return Result(code=code, out=out.getvalue(), err=capsys.readouterr().err)

    return run


@pytest.fixture
def manifest(tmp_path: Path) -> Callable[..., str]:
    def write(text: str, name: str = "web.yaml") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write
