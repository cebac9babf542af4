"""Every runtime, through a real agent and a real nats-server: the conformance kit.

Each test runs once per runtime (the ``subject`` fixture); all it knows of the runtime is
its :class:`~.kit.RuntimeAdapter`.
"""

from __future__ import annotations

import logging
import re

import pytest

from .kit import Bench, is_phase

REPORTS_LOGGER = "fleet.actors.agent.reconciler"  # every phase the agent reports is logged

ORDER = ["Pending", "Pulling", "Starting", "Running"]


def deploy(bench: Bench, variant: int = 1) -> int:
    revision = bench.put("web", bench.adapter.score(variant))
    bench.wait_report("web", is_phase("Running", revision), what=f"Running at {revision}")
    return revision


def test_deploy_reports_each_phase_with_its_revision(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REPORTS_LOGGER)
    bench.start_agent()
    revision = deploy(bench)
    # The wire keeps the latest value per key: a fast phase may be overwritten before it
    # is written, so the wire shows the phases in order; the agent's log shows each one.
    seen = bench.seen("web")
    assert {s.desired_revision for s in seen} == {revision}
    phases = [s.phase.value for s in seen]
    assert phases == sorted(phases, key=ORDER.index), phases  # in order, none after Running
    assert phases[-1] == "Running", phases
    logged = [
        r.getMessage()
        for r in caplog.records
        if r.name == REPORTS_LOGGER and r.getMessage().startswith(f"{bench.device}/web: ")
    ]
    said = [line.split(": ")[1].split(" (")[0] for line in logged]
    assert said[0] == "Pending", logged
    assert "Starting" in said, logged
    assert said[-1] == "Running", logged
    assert all(re.search(rf"\(revision {revision}[),]", line) for line in logged), logged
    assert len(bench.adapter.units(bench.device, "web")) == 1


def test_a_changed_score_replaces_the_workload(bench: Bench) -> None:
    bench.start_agent()
    deploy(bench, 1)
    before = bench.adapter.units(bench.device, "web")
    mark = len(bench.seen("web"))
    revision = deploy(bench, 2)
    after = bench.wait_units("web", lambda u: len(u) == 1, what="one unit")
    assert set(after).isdisjoint(before)
    assert all(s.desired_revision == revision for s in bench.seen("web", since=mark))


def test_an_unchanged_score_is_left_running(bench: Bench) -> None:
    bench.start_agent()
    deploy(bench, 1)
    before = bench.adapter.units(bench.device, "web")
    deploy(bench, 1)  # a new revision of the same spec
    assert bench.adapter.units(bench.device, "web") == before


def test_a_deleted_entry_removes_the_workload(bench: Bench) -> None:
    bench.start_agent()
    deploy(bench)
    revision = bench.delete("web")
    bench.wait_report("web", is_phase("Removed", revision), what="Removed")
    bench.wait_units("web", lambda u: not u, what="nothing running")


def test_drift_is_repaired(bench: Bench) -> None:
    bench.start_agent()
    revision = deploy(bench)
    before = bench.adapter.units(bench.device, "web")
    bench.adapter.tamper(bench.device, "web")
    after = bench.wait_units(
        "web", lambda u: len(u) == 1 and u != before, what="the workload restored"
    )
    assert after != before
    assert bench.state("web") is not None
    mark = len(bench.seen("web"))
    bench.wait_report("web", is_phase("Running", revision), since=mark - 1, what="Running")


def test_a_restarted_agent_adopts_the_workload_without_restarting_it(bench: Bench) -> None:
    first = bench.start_agent()
    revision = deploy(bench)
    before = bench.adapter.units(bench.device, "web")
    bench.stop_agent(first)
    mark = len(bench.seen("web"))
    bench.start_agent()
    bench.wait_report("web", is_phase("Running", revision), since=mark, what="Running again")
    assert bench.adapter.units(bench.device, "web") == before
    assert "Starting" not in [s.phase.value for s in bench.seen("web", since=mark)]


def test_a_bad_spec_is_failed_naming_the_field(bench: Bench) -> None:
    bench.start_agent()
    score, field = bench.adapter.bad_score()
    revision = bench.put("web", score)
    failed = bench.wait_report("web", is_phase("Failed", revision), what="Failed")
    assert failed.message is not None
    assert field in failed.message, failed.message
    assert bench.adapter.units(bench.device, "web") == {}


def test_a_score_type_without_a_runtime_here_is_failed_naming_type(bench: Bench) -> None:
    bench.start_agent()
    revision = bench.put("web", {"type": "no-such-runtime", "containers": []})
    failed = bench.wait_report("web", is_phase("Failed", revision), what="Failed")
    assert failed.message is not None
    assert "`type`" in failed.message, failed.message
