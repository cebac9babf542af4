"""pause / resume / approve: the annotations the operator reads, and the refusals."""

from __future__ import annotations

import pytest

from fleet.contracts import ANNOTATION_ROLLOUT_APPROVED, ANNOTATION_ROLLOUT_PAUSED

from .conftest import Objects, Run, rollout

pytestmark = pytest.mark.timeout(60)


def test_pause_sets_the_annotation_and_resume_removes_it(ctl: Run, objects: Objects) -> None:
    objects.deployment(status={"rollout": rollout("Progressing")})
    paused = ctl("rollout", "pause", "web")
    assert (paused.code, paused.out.strip()) == (0, "deployment default/web paused")
    assert objects.annotations()[ANNOTATION_ROLLOUT_PAUSED] == "true"
    resumed = ctl("rollout", "resume", "web", "-n", "default")
    assert (resumed.code, resumed.out.strip()) == (0, "deployment default/web resumed")
    assert ANNOTATION_ROLLOUT_PAUSED not in objects.annotations()


def test_a_missing_deployment_is_not_found_as_elsewhere_in_fleetctl(ctl: Run) -> None:
    for action in ("pause", "resume", "approve", "status", "undo", "history"):
        result = ctl("rollout", action, "nope")
        assert result.code == 1, (action, result.err)
        assert result.err.startswith("fleetctl: not found: ")
        assert "default/nope" in result.err


def test_approve_refuses_unless_waiting_for_approval(ctl: Run, objects: Objects) -> None:
    objects.deployment(status={"rollout": rollout("Progressing")})
    result = ctl("rollout", "approve", "web")
    assert result.code == 2
    assert "is Progressing (revision 4, batch 2/3), not WaitingForApproval" in result.err
    assert ANNOTATION_ROLLOUT_APPROVED not in objects.annotations()


def test_approve_lets_the_next_batch_start(ctl: Run, objects: Objects) -> None:
    objects.deployment(status={"rollout": rollout("WaitingForApproval", batch=1)})
    result = ctl("rollout", "approve", "web")
    assert result.code == 0, result.err
    assert objects.annotations()[ANNOTATION_ROLLOUT_APPROVED] == "4/2"
    assert "batch 2/3 of revision 4 approved" in result.out


def test_approve_force_starts_the_next_batch_of_a_progressing_rollout(
    ctl: Run, objects: Objects
) -> None:
    objects.deployment(status={"rollout": rollout("Progressing", revision=7, batch=2)})
    assert ctl("rollout", "approve", "web", "--force").code == 0
    assert objects.annotations()[ANNOTATION_ROLLOUT_APPROVED] == "7/3"


@pytest.mark.parametrize("phase", ["Complete", "Halted", "RolledBack"])
def test_approve_refuses_an_ended_rollout_even_forced(
    ctl: Run, objects: Objects, phase: str
) -> None:
    objects.deployment(status={"rollout": rollout(phase)})
    result = ctl("rollout", "approve", "web", "--force")
    assert result.code == 2
    assert f"the rollout of revision 4 is {phase}: nothing to approve" in result.err
    assert ANNOTATION_ROLLOUT_APPROVED not in objects.annotations()


def test_approve_refuses_the_last_batch_and_a_rollout_not_started(
    ctl: Run, objects: Objects
) -> None:
    objects.deployment(status={"rollout": rollout("WaitingForApproval", batch=3)})
    objects.deployment("fresh")
    last = ctl("rollout", "approve", "web", "--force")
    assert (last.code, "batch 3/3 is the last batch" in last.err) == (2, True)
    fresh = ctl("rollout", "approve", "fresh")
    assert (fresh.code, "has no rollout yet (waiting for the operator)" in fresh.err) == (2, True)
