"""fleetctl apply / delete / --watch: the API ends up holding exactly the file."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fleet.actors.operator.app import Operator
from fleet.contracts import Phase
from tests.fixtures.kube import KubeCluster
from tests.operator.sim import Fleet, eventually

from .conftest import WEB, Result


def test_apply_creates_then_configures_then_leaves_unchanged(
    ctl: Callable[..., Result], kube: KubeCluster, manifest: Callable[..., str]
) -> None:
    path = manifest(WEB)
    assert ctl("apply", "-f", path).out.strip().endswith("web created (namespace default)")
    assert ctl("apply", "-f", path).out.strip().endswith("web unchanged (namespace default)")
    narrower = WEB.replace("{site: lab}", "{role: edge}")
    result = ctl("apply", "-f", manifest(narrower, "v2.yaml"))
    assert result.out.strip().endswith("web configured (namespace default)")
    # the removed key is gone on the server, not merged with the new one
    deployment = kube.deployment("default", "web")
    assert deployment is not None
    assert deployment["spec"]["selector"] == {"matchLabels": {"role": "edge"}}


def test_apply_watch_shows_progress_until_every_device_runs(
    ctl: Callable[..., Result],
    fleet: Fleet,
    start_operator: Callable[..., Operator],
    manifest: Callable[..., str],
) -> None:
    fleet.join(["d1", "d2"], {"site": "lab"})
    start_operator(liveness_timeout=60)

    def devices_report() -> None:
        eventually(lambda: len(fleet.desired()) == 2, timeout=20)
        fleet.report(["d1"], "web", Phase.RUNNING)
        fleet.report(["d2"], "web", Phase.PULLING)
        time.sleep(2.0)  # fleetctl polls every 0.5 s: it shows 1/2 running meanwhile
        fleet.report(["d2"], "web", Phase.RUNNING)

    thread = threading.Thread(target=devices_report)
    thread.start()
    try:
        result = ctl("apply", "-f", manifest(WEB), "--watch", "--timeout", "30")
    finally:
        thread.join(30)
    assert result.code == 0, result.err
    progress = [line for line in result.out.splitlines() if line.startswith("default/web:")]
    assert (
        progress[-1] == "default/web: 2/2 running, 0 pending, 0 failed, 0 unreachable [AllRunning]"
    )
    assert "default/web: 1/2 running, 1 pending, 0 failed, 0 unreachable [Progressing]" in progress
    assert "d1" in result.out.split("[AllRunning]")[-1]  # the per-device table follows


def test_watch_gives_up_after_its_timeout_naming_the_failing_device(
    ctl: Callable[..., Result],
    fleet: Fleet,
    start_operator: Callable[..., Operator],
    manifest: Callable[..., str],
) -> None:
    fleet.join(["d1"], {"site": "lab"})
    start_operator(liveness_timeout=60)
    ctl("apply", "-f", manifest(WEB))
    eventually(lambda: len(fleet.desired()) == 1, timeout=20)
    fleet.report(["d1"], "web", Phase.FAILED, message="host port 8080 already in use")
    result = ctl("status", "web", "--watch", "--timeout", "3")
    assert result.code == 1
    assert "did not converge within 3 s" in result.err
    assert "d1: host port 8080 already in use" in result.out


def test_delete_wait_returns_once_the_operator_removed_it_everywhere(
    ctl: Callable[..., Result],
    kube: KubeCluster,
    fleet: Fleet,
    start_operator: Callable[..., Operator],
    manifest: Callable[..., str],
) -> None:
    fleet.join(["d1"], {"site": "lab"})
    start_operator(liveness_timeout=60)
    ctl("apply", "-f", manifest(WEB))
    eventually(lambda: set(fleet.desired()) == {"d1.web"}, timeout=20)
    result = ctl("delete", "web", "--wait", "--timeout", "30")
    assert result.code == 0, result.err
    assert "removed from every device" in result.out
    assert fleet.desired() == {}
    assert kube.deployment("default", "web") is None
    missing = ctl("delete", "web")
    assert missing.code == 1
    assert "default/web" in missing.err


def test_a_bad_manifest_is_refused_naming_file_document_and_field(
    ctl: Callable[..., Result], kube: KubeCluster, manifest: Callable[..., str]
) -> None:
    pod = "apiVersion: fleet.nationtech.io/v1alpha1\nkind: Pod\nmetadata: {name: x}\n"
    path = manifest(f"{WEB}---\n{pod}")
    result = ctl("apply", "-f", path)
    assert result.code == 2
    assert f"{path}: document 2: kind must be 'Deployment', got 'Pod'" in result.err
    bad_name = manifest(WEB.replace("name: web", "name: Web_1"), "bad.yaml")
    result = ctl("apply", "-f", bad_name)
    assert result.code == 2
    assert "metadata.name" in result.err
    assert "Web_1" in result.err
    assert kube.deployment("default", "web") is None  # nothing applied from a bad file
