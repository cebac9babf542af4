"""The ``fleet-operator`` program: documented flags, and a real run until SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.fixtures.kube import KubeCluster
from tests.fixtures.nats import NatsServer

from ..sim import SCORE, Fleet, eventually


def test_help_documents_every_flag() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fleet.cli.operator", "--help"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    for flag in ("--nats-url", "--liveness-timeout", "--namespace", "--kubeconfig", "--kube-url",
                 "--device-retention"):  # fmt: skip
        assert flag in out
    assert "KUBECONFIG" in out


def test_bad_value_is_refused_with_its_name() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fleet.cli.operator", "--liveness-timeout", "0"],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--liveness-timeout" in result.stderr


@pytest.mark.parametrize("value", ["-1", "30", "10"])
def test_a_retention_not_above_the_liveness_timeout_is_refused(value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fleet.cli.operator", "--liveness-timeout", "30",
         "--device-retention", value],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--device-retention must be 0 (never) or more than --liveness-timeout" in result.stderr


@pytest.mark.timeout(60)
def test_runs_against_nats_and_kubernetes_until_sigterm(
    kube: KubeCluster, fleet: Fleet, nats_server: NatsServer
) -> None:
    fleet.join(["d1"], {"role": "edge"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet.cli.operator", "--nats-url", nats_server.url,
         "--kube-url", kube.url, "--namespace", "prod", "--liveness-timeout", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        kube.create_deployment(
            "prod", "web", selector={"matchLabels": {"role": "edge"}}, score=SCORE
        )
        kube.create_deployment("dev", "api", selector={}, score=SCORE)  # not watched
        eventually(lambda: set(fleet.desired()) == {"d1.web"}, timeout=20)
        eventually(lambda: kube.aggregate("prod", "web").get("targeted") == 1, timeout=10)
        assert kube.status("dev", "api") == {}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
