"""The conformance kit's tests, collected again here over the simulated kvm and kubernetes
runtimes (this package's ``subject``): the load swarm's and the demo's stand-ins behave as
every runtime must."""

from __future__ import annotations

from tests.agent.conformance.test_conformance import (  # noqa: F401  (collected here)
    test_a_bad_spec_is_failed_naming_the_field,
    test_a_changed_score_replaces_the_workload,
    test_a_deleted_entry_removes_the_workload,
    test_a_restarted_agent_adopts_the_workload_without_restarting_it,
    test_a_score_type_without_a_runtime_here_is_failed_naming_type,
    test_an_unchanged_score_is_left_running,
    test_deploy_reports_each_phase_with_its_revision,
    test_drift_is_repaired,
)
