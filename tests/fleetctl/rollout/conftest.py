"""fleetctl rollout against the API emulator: Deployments, their status and their
DeploymentRevisions written through the real client, as the operator would write them."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from fleet.cli.fleetctl.main import main
from fleet.contracts import API_VERSION, KIND_DEPLOYMENT, KIND_DEPLOYMENT_REVISION
from fleet.runtime.kube.client import DEPLOYMENT_REVISIONS, DEPLOYMENTS, KubeClient, KubeNotFound
from tests.fixtures.kube import KubeCluster

NS = "default"


def score(image: str = "localhost/web:1", **extra: Any) -> dict[str, Any]:
    return {"type": "podman", "containers": [{"name": "web", "image": image}], **extra}


def rollout(phase: str, *, revision: int = 4, batch: int = 2, count: int = 3) -> dict[str, Any]:
    """A ``.status.rollout`` as the operator writes it."""
    return {
        "revision": revision, "phase": phase, "currentBatch": batch, "batchCount": count,
        "reason": f"the reason for {phase}", "stableRevision": revision - 1,
        "batches": [
            {"batch": i + 1, "devices": 10, "updated": 10 if i < batch else 0,
             "running": 9 if i < batch else 0, "failed": 1 if i < batch else 0,
             "unreachable": 0, "skipped": 0}
            for i in range(count)
        ],
    }  # fmt: skip


@dataclass
class Result:
    code: int
    out: str
    err: str


class Run(Protocol):
    def __call__(self, *args: str, out: io.StringIO | None = None) -> Result: ...


@pytest.fixture
def client(kube: KubeCluster) -> KubeClient:
    return KubeClient(kube.api_client, timeout=5.0)


@pytest.fixture
def ctl(kube: KubeCluster, capsys: pytest.CaptureFixture[str]) -> Run:
    """``fleetctl ARGS`` in-process against the emulator (no NATS: rollout needs none)."""

    def run(*args: str, out: io.StringIO | None = None) -> Result:
        out = out if out is not None else io.StringIO()
        capsys.readouterr()
        code = main([*args, "--kube-url", kube.url], out=out)
        return Result(code=code, out=out.getvalue(), err=capsys.readouterr().err)

    return run


class Objects:
    """Writes what the operator would: Deployments with a status, and their revisions."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    def deployment(
        self,
        name: str = "web",
        *,
        spec_score: dict[str, Any] | None = None,
        status: dict[str, Any] | None = None,
    ) -> None:
        self.client.create(DEPLOYMENTS, body={
            "apiVersion": API_VERSION, "kind": KIND_DEPLOYMENT,
            "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {}, "score": spec_score or score()},
        })  # fmt: skip
        if status is not None:
            self.status(name, {"observedGeneration": 1, **status})

    def status(self, name: str, status: dict[str, Any]) -> None:
        self.client.patch(DEPLOYMENTS, namespace=NS, name=name, body={"status": status},
                          status=True)  # fmt: skip

    def revision(
        self,
        number: int,
        *,
        name: str = "web",
        image: str = "",
        outcome: str | None = None,
        raw_score: Any = None,
    ) -> None:
        body: dict[str, Any] = {
            "apiVersion": API_VERSION, "kind": KIND_DEPLOYMENT_REVISION,
            "metadata": {"name": f"{name}-r{number}", "namespace": NS},
            "spec": {"deployment": name, "revision": number,
                     "score": raw_score if raw_score is not None
                     else score(image or f"localhost/web:{number}")},
        }  # fmt: skip
        if outcome is not None:
            body["status"] = {"outcome": outcome, "reason": f"it ended {outcome}"}
        with contextlib.suppress(KubeNotFound):  # owned, as the operator writes it
            uid = self.get(name)["metadata"]["uid"]
            body["metadata"]["ownerReferences"] = [
                {"apiVersion": API_VERSION, "kind": KIND_DEPLOYMENT, "name": name, "uid": uid}
            ]
        self.client.create(DEPLOYMENT_REVISIONS, body=body)

    def get(self, name: str = "web") -> dict[str, Any]:
        return self.client.get(DEPLOYMENTS, namespace=NS, name=name)

    def annotations(self, name: str = "web") -> dict[str, str]:
        found: dict[str, str] = self.get(name)["metadata"].get("annotations") or {}
        return found


@pytest.fixture
def objects(client: KubeClient) -> Objects:
    return Objects(client)
