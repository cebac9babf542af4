"""The operator's dashboard writes through the leader's fence: a replica that lost the
Lease refuses a rollout button (the Deployment unchanged), as every other writer does."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from fleet.cli import operator as operator_cli
from fleet.cli import operator_dashboard
from fleet.contracts import ANNOTATION_ROLLOUT_PAUSED
from fleet.dashboard.service import DashboardService
from fleet.runtime.actorkit.supervisor import Supervisor
from tests.fixtures.kube import KubeCluster
from tests.operator.sim import SCORE
from tests.operator.units.fakes import Switch

TOKEN = "a-static-dashboard-token-0123456789"


def pause(url: str) -> int:
    request = urllib.request.Request(
        url + "/api/deployments/ns/web/rollout/pause", data=b"{}", method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            json.loads(response.read())
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()  # its socket: a ResourceWarning otherwise, in a later test
        return int(exc.code)


@pytest.mark.timeout(120)
def test_a_deposed_leaders_dashboard_writes_nothing(
    kube: KubeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(operator_dashboard.TOKEN_ENV, TOKEN)
    kube.create_deployment("ns", "web", selector={"matchLabels": {"role": "edge"}}, score=SCORE)
    args = operator_cli.parse_args(["--dashboard-address", "127.0.0.1:0"])
    supervisor, fence = Supervisor(name="test"), Switch()
    started: list[int] = []
    monkeypatch.setattr(DashboardService, "start", _recording(started))
    operator_dashboard.start(args, supervisor=supervisor, api_client=kube.api_client, fence=fence)
    try:
        url = f"http://127.0.0.1:{started[0]}"
        fence.open = False  # the Lease is lost
        assert pause(url) != 200
        obj = kube.deployment("ns", "web") or {}
        assert ANNOTATION_ROLLOUT_PAUSED not in ((obj.get("metadata") or {}).get("annotations")
                                                 or {})  # fmt: skip
        fence.open = True  # leading again (a test's licence): the same button works
        assert pause(url) == 200
        obj = kube.deployment("ns", "web") or {}
        assert (obj.get("metadata") or {}).get("annotations", {}).get(
            ANNOTATION_ROLLOUT_PAUSED
        ) == "true"
    finally:
        supervisor.stop()


def _recording(started: list[int]) -> Callable[[DashboardService], tuple[str, int]]:
    """DashboardService.start, noting the port it bound (the CLI's start returns none)."""
    original = DashboardService.start

    def start(self: DashboardService) -> tuple[str, int]:
        bound: tuple[str, int] = original(self)
        started.append(bound[1])
        return bound

    return start
