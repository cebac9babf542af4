"""SIGKILL of the agent process while it applies a score of many manifests: the restarted
agent converges, adopting what the first one applied (the same objects, not re-created),
with no duplicate and no orphan; then prunes down to a smaller score."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fleet.contracts.kube_score import MAX_MANIFESTS
from tests.agent.conformance.adapters import KubernetesAdapter, web_deployment
from tests.agent.conformance.kit import TIMEOUT, Bench, is_phase

from .test_kube_runtime import CONFIGMAPS, config_map, names, score

CONFIG = """
device_id = "{device}"
[labels]
site = "lab"
[nats]
urls = ["{url}"]
[podman]
socket = "unix:///nonexistent/simulated.sock"
[agent]
heartbeat_interval_s = 1.0
resync_interval_s = 2.0
state_dir = "{state}"
[kubernetes]
kubeconfig = "{kubeconfig}"
field_manager = "fleet-agent-crash-test"
"""


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.agent.kubernetes.run_agent", str(config)],
            env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def test_sigkill_mid_apply_then_restart_converges_without_duplicates_or_orphans(
    bench: Bench, kube_adapter: KubernetesAdapter, tmp_path: Path
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        CONFIG.format(
            device=bench.device, url=bench.nats_url, state=tmp_path / "state",
            kubeconfig=kube_adapter.kube.write_kubeconfig(tmp_path / "kubeconfig"),
        )
    )  # fmt: skip
    log = tmp_path / "agent.log"
    maps = [config_map(f"cm-{i:02d}", n=str(i)) for i in range(MAX_MANIFESTS - 1)]
    wanted = {m["metadata"]["name"] for m in maps}
    revision = bench.put("big", score("big", web_deployment(), *maps))
    proc = start(config, log)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not names(kube_adapter, CONFIGMAPS, "big"):  # the first objects are there
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        before = {
            o["metadata"]["name"]: o["metadata"]["uid"]
            for o in kube_adapter.cluster.list(CONFIGMAPS, namespace="big", labels={})
        }
        assert before, "killed before anything was applied"
        proc = start(config, log)
        bench.wait_report("big", is_phase("Running", revision), what="Running after restart")
        after = {
            o["metadata"]["name"]: o["metadata"]["uid"]
            for o in kube_adapter.cluster.list(CONFIGMAPS, namespace="big", labels={})
        }
        assert set(after) == wanted  # all of them, once each, nothing else
        assert {n: after[n] for n in before} == before  # adopted, not re-created
        smaller = bench.put("big", score("big", web_deployment(), *maps[:3]))
        bench.wait_report("big", is_phase("Running", smaller), what="Running, pruned")
        assert names(kube_adapter, CONFIGMAPS, "big") == {"cm-00", "cm-01", "cm-02"}
        print(f"killed with {len(before)} of {len(wanted)} ConfigMaps applied")
    finally:
        stop(proc)
