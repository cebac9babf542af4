"""What an agent run counts reaches its heartbeat and, with ``[metrics] address``, its own
``/metrics``: the same numbers in both. A container removed by hand is a drift repair, a
pull that fails is counted as failed, and a run killed with SIGKILL starts its counters
again under a new instance id (what the operator's fleet-wide sums rely on)."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleet.contracts import (
    BUCKET_DEVICE_HEARTBEAT,
    AgentHealth,
    HeartbeatPayload,
    decode_heartbeat,
    device_heartbeat_key,
)
from tests.agent.conftest import AgentWorld, httpd_score, running, wait_for
from tests.agent.process.harness import AgentProcess
from tests.fixtures.podman import free_port

pytestmark = [pytest.mark.podman, pytest.mark.timeout(180)]

METRICS = '\n[metrics]\naddress = "127.0.0.1:0"\n'
SERVING = re.compile(r"serving /metrics, /healthz and /readyz on http://127\.0\.0\.1:(\d+)")


def heartbeat(world: AgentWorld) -> HeartbeatPayload | None:
    key = device_heartbeat_key(world.device)
    entry = world.loop.run(world.bus.get(BUCKET_DEVICE_HEARTBEAT, key), timeout=10)
    return None if entry is None else decode_heartbeat(entry.value)


def health_of(world: AgentWorld) -> AgentHealth:
    beat = heartbeat(world)
    assert beat is not None
    assert beat.health is not None, beat
    return beat.health


def scrape(base: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):  # the client library's own parser
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_heartbeat_and_metrics_count_drift_repairs_and_pulls(
    world: AgentWorld, tmp_path: Path, agents: list[AgentProcess]
) -> None:
    agent = AgentProcess(world, tmp_path, extra=METRICS)
    agents.append(agent)
    agent.start()
    found = wait_for(lambda: SERVING.search(agent.log()), timeout=30, what="the metrics port")
    base = f"http://127.0.0.1:{int(found.group(1))}"
    assert status(f"{base}/healthz") == 200
    wait_for(lambda: status(f"{base}/readyz") == 200, timeout=30, what="ready (NATS)")

    port = free_port()
    rev = world.put_desired("web", httpd_score(image=world.podman.image, port=port))
    world.wait_state("web", lambda s: running(s, rev), timeout=60)
    first = wait_for(lambda: (h := heartbeat(world)) and h.health and h.health.reconciles and h)
    assert first.health is not None
    assert first.health.drift_repairs == 0

    assert (
        world.podman.podman("rm", "-f", "-t", "0", f"fleet-{world.device}-web-web").returncode == 0
    )
    wait_for(lambda: health_of(world).drift_repairs >= 1, timeout=60, what="a drift repair")
    world.wait_state("web", lambda s: running(s, rev), timeout=60)

    broken = httpd_score(image="127.0.0.1:1/fleet-test/absent:1", port=free_port())
    world.put_desired("bad", broken)
    wait_for(lambda: health_of(world).pull_failures >= 1, timeout=60, what="a failed pull")

    def agree() -> bool:  # the same counters in both (reconciles move on every resync)
        health, samples = health_of(world), scrape(base)
        return all(
            samples.get(f"fleet_agent_{name}_total") == getattr(health, name)
            for name in ("drift_repairs", "pulls", "pull_failures")
        )

    wait_for(agree, timeout=30, what="the heartbeat's and /metrics' counters agree")
    samples = scrape(base)
    assert samples["fleet_agent_reconcile_failures_total"] >= 1
    assert samples["fleet_agent_reconcile_seconds_count{outcome=running}"] >= 1
    assert samples["fleet_agent_pull_seconds_count{result=failed}"] >= 1
    assert samples["fleet_agent_nats_connected"] == 1
    assert agent.stop() == 0


def test_a_killed_run_starts_its_counters_again_under_a_new_instance(
    world: AgentWorld, tmp_path: Path, agents: list[AgentProcess]
) -> None:
    agent = AgentProcess(world, tmp_path)
    agents.append(agent)
    agent.start()
    rev = world.put_desired("web", httpd_score(image=world.podman.image, port=free_port()))
    world.wait_state("web", lambda s: running(s, rev), timeout=60)
    before = wait_for(
        lambda: (h := heartbeat(world)) and h.health and h.health.reconciles >= 8 and h,
        timeout=60, what="eight passes (one per resync)",
    )  # fmt: skip

    agent.kill()  # SIGKILL mid-run: no clean-up
    again = AgentProcess(world, tmp_path)  # the same config and state directory
    agents.append(again)
    again.start()
    after = wait_for(
        lambda: (h := heartbeat(world)) and h.instance_id != before.instance_id and h.health and h,
        timeout=60, what="a heartbeat of the new run",
    )  # fmt: skip
    assert after.health is not None
    assert before.health is not None
    assert after.health.reconciles < before.health.reconciles  # counted from 0 again
    assert after.health.drift_repairs == 0  # the adopted container was not touched
    assert again.stop() == 0
